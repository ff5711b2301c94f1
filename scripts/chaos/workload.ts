import { readFileSync } from "node:fs";
import { join } from "node:path";
import { FIXTURES } from "../../test/helpers.ts";
import { between, mulberry32, type Rand } from "./prng.ts";
import type { Site } from "./site.ts";

// The workload: one-shot tasks at a steady rate (some with retries, some of those failing on purpose), a small
// workflow now and then, a cron task firing every second, and one daemon at a time. Every task runs the ledger
// guest (test/fixtures/components/ledger.c): argv = [sleep ms, fail while attempt below]. A task is
// acknowledged when its start was answered 200 (or 409 with the task already started: an answer lost in a
// hand-over and the start retried).

export type Kind = "oneshot" | "retry" | "workflow" | "cron" | "daemon";

export class Workload {
  readonly acknowledged = new Map<string, Kind>();
  cronId?: string;
  private running = true;
  private loops: Promise<void>[] = [];
  private readonly file: string;
  private readonly dirArg: string;
  private n = 0;
  refused = 0;

  constructor(
    private site: Site,
    private seed: number,
  ) {
    this.file = readFileSync(join(FIXTURES, "ledger.component.wasm")).toString("base64");
    this.dirArg = `--dir=${site.ledger}::/ledger`;
  }

  private body(inputs: number[], extra: Record<string, unknown> = {}) {
    return { name: "ledger", file: this.file, inputs, cli_args: [this.dirArg], ...extra };
  }

  private async started(id: string, kind: Kind): Promise<void> {
    const s = await this.site.api("POST", `/tasks/${id}/start`);
    if (s.status === 200) {
      this.acknowledged.set(id, kind);
      return;
    }
    if (s.status === 409) {
      const t = await this.site.api("GET", `/tasks/${id}`);
      if (t.body?.state >= 1) {
        this.acknowledged.set(id, kind);
        return;
      }
    }
    this.refused++;
    console.error(`start of ${id} refused: ${s.status} ${JSON.stringify(s.body).slice(0, 200)}`);
  }

  private async launch(kind: Kind, body: Record<string, unknown>): Promise<string | undefined> {
    const c = await this.site.api("POST", "/tasks", body);
    if (c.status !== 201) {
      this.refused++;
      console.error(`create refused: ${c.status} ${JSON.stringify(c.body).slice(0, 200)}`);
      return undefined;
    }
    await this.started(c.body.id, kind);
    return c.body.id;
  }

  begin(): void {
    // A loop that meets an error (no manager answered for a minute) starts again while the workload runs.
    const guard = async (name: string, f: () => Promise<void>) => {
      while (this.running) {
        try {
          return await f();
        } catch (e) {
          console.error(`workload ${name}: ${e}`);
          await Bun.sleep(1000);
        }
      }
    };
    this.loops.push(guard("cron", () => this.cron()));
    this.loops.push(guard("one-shots", () => this.oneShots()));
    this.loops.push(guard("workflows", () => this.workflows()));
    this.loops.push(guard("daemons", () => this.daemons()));
  }

  async end(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    if (this.cronId) await this.site.api("POST", `/tasks/${this.cronId}/pause`);
  }

  private async cron(): Promise<void> {
    const c = await this.site.api(
      "POST",
      "/tasks",
      this.body([50, 0], { schedule: "* * * * * *", is_recurring: true }),
    );
    if (c.status !== 201) throw new Error(`cron task: ${c.status} ${JSON.stringify(c.body)}`);
    this.cronId = c.body.id;
    this.acknowledged.set(c.body.id, "cron");
  }

  /** Each loop has its own stream of the seed, so one loop's timing does not change another's choices. */
  private stream = (k: number): Rand => mulberry32(this.seed * 1000 + k);

  private async oneShots(): Promise<void> {
    const r = this.stream(1);
    while (this.running) {
      try {
        await this.oneShot(r);
      } catch (e) {
        this.refused++;
        console.error(`one-shot: ${e}`);
      }
      await Bun.sleep(between(r, 300, 1200));
    }
  }

  private async oneShot(r: Rand): Promise<void> {
    const sleep = between(r, 50, 1500);
    if (r() < 0.3) {
      // Retries: fail while the attempt is below 1 (never), 2, 3 or 4 (always, with 2 retries).
      const failBelow = between(r, 1, 4);
      await this.launch("retry", this.body([sleep, failBelow], { max_retries: 2, retry_backoff_s: 1 }));
    } else await this.launch("oneshot", this.body([sleep, 0]));
  }

  private async workflows(): Promise<void> {
    const r = this.stream(2);
    await Bun.sleep(2000);
    while (this.running) {
      const p = `wf-${this.seed}-${this.n++}-${Date.now().toString(36)}`;
      const tasks = [
        { id: `${p}-a`, ...this.body([between(r, 100, 800), 0]) },
        { id: `${p}-b`, ...this.body([between(r, 100, 800), 0]), depends_on: [`${p}-a`] },
        { id: `${p}-c`, ...this.body([between(r, 100, 800), 0]), depends_on: [`${p}-a`] },
        { id: `${p}-d`, ...this.body([100, 0]), depends_on: [`${p}-b`, `${p}-c`] },
      ];
      const c = await this.site.api("POST", "/workflows", { tasks });
      let wf: string | undefined = c.body?.workflow_id;
      if (c.status === 409) wf = (await this.site.api("GET", `/tasks/${p}-a`)).body?.workflow_id;
      if (!wf) {
        this.refused++;
        console.error(`workflow refused: ${c.status} ${JSON.stringify(c.body).slice(0, 200)}`);
      } else {
        const s = await this.site.api("POST", `/workflows/${wf}/start`);
        const a = await this.site.api("GET", `/tasks/${p}-a`);
        if (s.status === 200 || a.body?.state >= 1) for (const t of tasks) this.acknowledged.set(t.id, "workflow");
        else {
          this.refused++;
          console.error(`workflow start refused: ${s.status} ${JSON.stringify(s.body).slice(0, 200)}`);
        }
      }
      await Bun.sleep(between(r, 8000, 16_000));
    }
  }

  private async daemons(): Promise<void> {
    const r = this.stream(3);
    await Bun.sleep(1000);
    while (this.running) {
      const id = await this.launch("daemon", this.body([between(r, 3000, 15_000), 0], { daemon: true }));
      while (this.running && id) {
        await Bun.sleep(1000);
        const t = await this.site.api("GET", `/tasks/${id}`);
        if (t.body?.state >= 3) break;
      }
      await Bun.sleep(500);
    }
  }
}
