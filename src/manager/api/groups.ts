import type { Hono } from "hono";
import { Fresh, groupTypo, JOB_FIELDS, JobCreate, JobStatus, WORKFLOW_FIELDS, WorkflowCreate } from "../../core/job.ts";
import type { Groups } from "../groups.ts";
import { jsonBody, paged, query } from "./http.ts";

/** `/jobs…` and `/workflows…`. */
export function groupRoutes(app: Hono, groups: Groups): void {
  app.post("/jobs", async (c) => {
    const job = await groups.createJob(
      await jsonBody(c, JobCreate, { yaml: true, typos: groupTypo(JOB_FIELDS) }),
      query(c, "fresh", Fresh),
    );
    c.header("Location", `/jobs/${job.job_id}`);
    return c.json(job, 201);
  });
  app.get("/jobs", (c) => {
    const status = query(c, "status", JobStatus);
    return paged(c, "jobs", (o, l) => groups.listJobs(o, l, status));
  });
  app.get("/jobs/:id", (c) => c.json(groups.getJob(c.req.param("id"))));
  app.post("/jobs/:id/start", async (c) => c.json(await groups.startJob(c.req.param("id"))));
  app.post("/jobs/:id/stop", async (c) => c.json(await groups.stopJob(c.req.param("id"))));

  app.post("/workflows", async (c) =>
    c.json(
      await groups.createWorkflow(
        await jsonBody(c, WorkflowCreate, { yaml: true, typos: groupTypo(WORKFLOW_FIELDS) }),
        query(c, "fresh", Fresh),
      ),
      201,
    ),
  );
  app.get("/workflows", (c) => {
    const status = query(c, "status", JobStatus);
    return paged(c, "workflows", (o, l) => groups.listWorkflows(o, l, status));
  });
  app.get("/workflows/:id", (c) => c.json(groups.getWorkflow(c.req.param("id"))));
  app.post("/workflows/:id/start", async (c) => c.json(await groups.startWorkflow(c.req.param("id"))));
  app.post("/workflows/:id/stop", async (c) => c.json(await groups.stopWorkflow(c.req.param("id"))));
}
