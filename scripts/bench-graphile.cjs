// The peer benchmark of issue 11: graphile-worker, a well-known PostgreSQL
// job queue, running no-op jobs on the same server as orch's queue bench.
// Run by scripts/bench-graphile.sh, which installs graphile-worker and `pg`
// (pinned) and puts them on NODE_PATH.
//
//   node scripts/bench-graphile.cjs URL JOBS [CONCURRENCY...]
//
// For each concurrency C (default 1, 4, 16), in a fresh schema of its own
// (graphile-worker's `schema` option; dropped after):
// - cycle: C producers add JOBS jobs one by one (addJob) while a runner with
//   C workers runs them; timed from the first add to the last success. Like
//   orch's bench, every job is enqueued, claimed and completed in the timed
//   part (graphile-worker's producers and workers are separate connections,
//   where each orch worker enqueues, claims and completes in turn).
// - drain: JOBS jobs added in batches first (not timed), then a runner with
//   C workers runs them all; graphile-worker's own perf test measures this.
// Prints one line per concurrency: `graphile C CYCLE_JOBS_PER_S DRAIN_JOBS_PER_S`.

"use strict";

const { run, runMigrations, makeWorkerUtils, Logger } = require("graphile-worker");
const { Client } = require("pg");

const [url, jobsArg, ...concArgs] = process.argv.slice(2);
if (!url || !jobsArg) {
  console.error("usage: node bench-graphile.cjs URL JOBS [CONCURRENCY...]");
  process.exit(2);
}
const JOBS = Number(jobsArg);
const CONCURRENCY = concArgs.length ? concArgs.map(Number) : [1, 4, 16];
const quiet = new Logger(() => () => {});
const taskList = { noop: async () => {} };

async function admin(sql) {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

/** A fresh schema, migrated; `fn(schema)`; the schema dropped. */
async function inFreshSchema(tag, fn) {
  const schema = `gw_bench_${Date.now()}_${tag}`;
  await runMigrations({ connectionString: url, schema, logger: quiet });
  try {
    return await fn(schema);
  } finally {
    await admin(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  }
}

/** Start a runner; resolves `done` when `jobs` jobs succeeded. */
async function startRunner(schema, concurrency, jobs) {
  let succeeded = 0;
  let finish;
  const done = new Promise((resolve) => (finish = resolve));
  const runner = await run({
    connectionString: url,
    schema,
    concurrency,
    maxPoolSize: concurrency + 2,
    noHandleSignals: true,
    logger: quiet,
    taskList,
  });
  runner.events.on("job:success", () => {
    succeeded += 1;
    if (succeeded === jobs) finish();
  });
  runner.events.on("job:error", ({ error }) => {
    console.error("a no-op job failed:", error);
    process.exit(1);
  });
  return { runner, done };
}

async function cycle(concurrency) {
  return inFreshSchema(`c${concurrency}`, async (schema) => {
    // A connection per producer, as each orch worker has its own.
    const utils = await makeWorkerUtils({
      connectionString: url,
      schema,
      logger: quiet,
      maxPoolSize: concurrency + 1,
    });
    const { runner, done } = await startRunner(schema, concurrency, JOBS);
    let left = JOBS;
    const start = process.hrtime.bigint();
    const producers = Array.from({ length: concurrency }, async () => {
      while (left > 0) {
        left -= 1;
        await utils.addJob("noop", {});
      }
    });
    await Promise.all(producers);
    await done;
    const secs = Number(process.hrtime.bigint() - start) / 1e9;
    await runner.stop();
    await utils.release();
    return JOBS / secs;
  });
}

async function drain(concurrency) {
  return inFreshSchema(`d${concurrency}`, async (schema) => {
    const utils = await makeWorkerUtils({ connectionString: url, schema, logger: quiet });
    for (let added = 0; added < JOBS; added += 1000) {
      const n = Math.min(1000, JOBS - added);
      await utils.addJobs(Array.from({ length: n }, () => ({ identifier: "noop", payload: {} })));
    }
    await utils.release();
    const start = process.hrtime.bigint();
    const { runner, done } = await startRunner(schema, concurrency, JOBS);
    await done;
    const secs = Number(process.hrtime.bigint() - start) / 1e9;
    await runner.stop();
    return JOBS / secs;
  });
}

(async () => {
  for (const c of CONCURRENCY) {
    const cycled = await cycle(c);
    const drained = await drain(c);
    console.log(`graphile ${c} ${cycled.toFixed(0)} ${drained.toFixed(0)}`);
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
