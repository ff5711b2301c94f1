// A per-round line chart in SVG: rounds on a numeric axis (1, 2, 3 … never times), its own scale per chart (loss
// and accuracy apart), as wide as its container, with its figures as a table for screen readers.

const W = 600;
const H = 180;
const PAD = { l: 48, r: 12, t: 12, b: 28 };

function ticks(min: number, max: number, n: number): number[] {
  if (max === min) return [min];
  const raw = (max - min) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => (max - min) / s <= n) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step / 1e6; v += step) out.push(Number(v.toPrecision(6)));
  return out;
}

export function RoundChart(p: { title: string; rounds: number[]; values: (number | null)[]; color: string }) {
  const pts = p.rounds.map((r, i) => [r, p.values[i]] as const).filter((x): x is [number, number] => x[1] != null);
  if (pts.length === 0) return <p class="muted">{p.title}: no round has reported it yet.</p>;
  const xs = pts.map((x) => x[0]);
  const ys = pts.map((x) => x[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs, Math.min(...xs) + 1)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (y0 === y1) [y0, y1] = [y0 - 1, y1 + 1];
  const sx = (x: number) => PAD.l + ((x - x0) / (x1 - x0)) * (W - PAD.l - PAD.r);
  const sy = (y: number) => H - PAD.b - ((y - y0) / (y1 - y0)) * (H - PAD.t - PAD.b);
  const xt = ticks(x0, x1, 8).filter((x) => Number.isInteger(x));
  const yt = ticks(y0, y1, 4);
  return (
    <figure class="roundchart">
      <figcaption>{p.title}</figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`${p.title}, by round`}>
        <g class="axis" data-testid="round-axis">
          {xt.map((x) => (
            <text key={x} x={sx(x)} y={H - 8} text-anchor="middle">
              {x}
            </text>
          ))}
          <text x={W - PAD.r} y={H - PAD.b - 4} text-anchor="end">
            round
          </text>
        </g>
        <g class="axis">
          {yt.map((y) => (
            <g key={y}>
              <line x1={PAD.l} x2={W - PAD.r} y1={sy(y)} y2={sy(y)} class="grid" />
              <text x={PAD.l - 6} y={sy(y) + 4} text-anchor="end">
                {Math.abs(y) >= 100 ? y.toFixed(0) : Number(y.toPrecision(3))}
              </text>
            </g>
          ))}
        </g>
        <polyline
          fill="none"
          stroke={p.color}
          stroke-width="2"
          points={pts.map(([x, y]) => `${sx(x)},${sy(y)}`).join(" ")}
        />
        {pts.map(([x, y]) => (
          <circle key={x} cx={sx(x)} cy={sy(y)} r="3" fill={p.color} />
        ))}
      </svg>
      <table class="sr-only">
        <caption>{p.title}</caption>
        <thead>
          <tr>
            <th>Round</th>
            <th>{p.title}</th>
          </tr>
        </thead>
        <tbody>
          {pts.map(([x, y]) => (
            <tr key={x}>
              <td>{x}</td>
              <td>{y}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </figure>
  );
}
