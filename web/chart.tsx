import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

// Charts, each with its text alternative: the last points as a table folded under it.

/** A time series with uPlot: x in seconds since the epoch, one line per series. */
export function Chart(p: { title: string; x: number[]; series: { label: string; values: (number | null)[] }[] }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el || p.x.length === 0) return;
    // As wide as its container (a phone's 360 px or a desktop's column), and again when that changes.
    const fit = () => Math.max(200, el.clientWidth || 600);
    const width = fit();
    const colors = ["#0b57d0", "#b00020", "#176f2c", "#8a5a00"];
    const plot = new uPlot(
      {
        title: p.title,
        width,
        height: 200,
        series: [{}, ...p.series.map((s, i) => ({ label: s.label, stroke: colors[i % colors.length], width: 2 }))],
      },
      [p.x, ...p.series.map((s) => s.values)] as uPlot.AlignedData,
      el,
    );
    const resized = new ResizeObserver(() => {
      if (fit() !== plot.width) plot.setSize({ width: fit(), height: 200 });
    });
    resized.observe(el);
    return () => {
      resized.disconnect();
      plot.destroy();
    };
  }, [JSON.stringify(p)]);
  if (p.x.length === 0) return <p class="muted">{p.title}: no samples yet.</p>;
  return (
    <>
      <div class="chart" ref={box} role="img" aria-label={p.title} />
      <ChartTable {...p} />
    </>
  );
}

/** A chart's text alternative: its last 20 points as a table, folded under the chart. */
export function ChartTable(p: { title: string; x: number[]; series: { label: string; values: (number | null)[] }[] }) {
  const from = Math.max(0, p.x.length - 20);
  // Seconds since the epoch are times; small numbers (rounds) are shown as they are.
  const at = (x: number) => (x > 1e9 ? new Date(x * 1000).toLocaleTimeString() : String(x));
  const num = (v: number | null | undefined) =>
    v === null || v === undefined ? "" : String(Math.round(v * 100) / 100);
  return (
    <details class="chart-table">
      <summary>{p.title} as a table</summary>
      <div class="scroll">
        <table>
          <caption class="muted">
            {p.title}: the last {p.x.length - from} of {p.x.length} points
          </caption>
          <thead>
            <tr>
              <th scope="col">{p.x[0] !== undefined && p.x[0] > 1e9 ? "Time" : "Round"}</th>
              {p.series.map((s) => (
                <th key={s.label} scope="col">
                  {s.label}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {p.x.slice(from).map((x, i) => (
              <tr key={`${x}-${i}`}>
                <td>{at(x)}</td>
                {p.series.map((s) => (
                  <td key={s.label}>{num(s.values[from + i])}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </details>
  );
}
