// The real npm package dcrf-client 0.3.0, unchanged, against two `syncline serve` processes that share one database
// (an SQLite file, or PostgreSQL with SYNCLINE_JS_ENGINE=postgres: ctest runs both) and one Redis (issues 11, 12). Fourteen scenarios (create, retrieve, list, patch, update, delete, update and delete
// errors, subscribe update / delete / multiple, cross-connection update / delete, cancel), each with its clients on
// different processes so that every push crosses Redis, run with pkField "id" (a serializer listing "id") and with
// the client's default pkField "pk" (a serializer listing "pk"), DCRF_ROUNDS times each (default 3).
//
// Environment: SYNCLINE_BIN_DIR (the syncline binary), SYNCLINE_TEST_REDIS_URL and SYNCLINE_NODE_MODULES (without
// either: exit 77, a skip; for PostgreSQL also SYNCLINE_TEST_PG_URL and SYNCLINE_TEST_PG_BIN, see support.mjs). Exit 0 when every scenario of every round passed, 1 otherwise (each failure named by
// pkField, round and scenario). The server processes are killed on every exit path.

import { spawn } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { isDeepStrictEqual } from "node:util";

import { testDatabase } from "./support.mjs";

const redisUrl = process.env.SYNCLINE_TEST_REDIS_URL;
const nodeModules = process.env.SYNCLINE_NODE_MODULES;
if (!redisUrl || !nodeModules) {
    console.log("skip: SYNCLINE_TEST_REDIS_URL and SYNCLINE_NODE_MODULES must be set (scripts/test.sh sets both)");
    process.exit(77);
}
const binary = path.join(process.env.SYNCLINE_BIN_DIR || "build/bin", "syncline");
const rounds = Number.parseInt(process.env.DCRF_ROUNDS || "3", 10);
const require = createRequire(nodeModules + "/");
const dcrf = require("dcrf-client");
const WebSocket = require("ws");

// Generous: a loaded 2-core machine, sanitizer builds. Waits end as soon as the event comes.
const kStartMs = 30000;
const kWaitMs = 10000;

// ---------------------------------------------------------------------------------------------------------------
// Server processes.

const servers = [];
const tempDir = fs.mkdtempSync(path.join(os.tmpdir(), "syncline-dcrf-"));
const db = testDatabase(tempDir, "shared.db");

function killServers() {
    for (const server of servers) {
        if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill("SIGKILL");
    }
}
process.on("exit", () => {
    killServers();
    db.drop();
    fs.rmSync(tempDir, { recursive: true, force: true });
});
for (const signal of ["SIGINT", "SIGTERM"]) {
    process.on(signal, () => {
        console.log(`dcrf_client: ${signal}, stopping`);
        process.exit(1);
    });
}
process.on("uncaughtException", (error) => {
    console.log(`FAIL dcrf_client: uncaught exception: ${error && error.stack ? error.stack : error}`);
    process.exit(1);
});
process.on("unhandledRejection", (error) => {
    console.log(`FAIL dcrf_client: unhandled rejection: ${describe(error)}`);
    process.exit(1);
});

const fields = { title: { type: "text", max_length: 100 }, body: { type: "text", blank: true, default: "" } };
const mixins = ["list", "retrieve", "create", "update", "patch", "delete", "observe_instance"];
const config = {
    database: db.database,
    workers: 2,
    bus: { redis: redisUrl },
    models: { items: { fields } },
    routes: {
        "/ws/items-id/": { model: "items", mixins, fields: ["id", "title", "body"] },
        "/ws/items-pk/": { model: "items", mixins, fields: ["pk", "title", "body"] },
        // dcrf-client always speaks the multiplexed form: {"stream": ..., "payload": ...}.
        "/ws/": { streams: { items_id: "/ws/items-id/", items_pk: "/ws/items-pk/" } },
    },
};
const configPath = path.join(tempDir, "config.json");
fs.writeFileSync(configPath, JSON.stringify(config, null, 2));

// Starts `syncline serve` on a port the kernel picks, and resolves with that port once it listens (its start-up line
// names it).
function startServer(name) {
    const child = spawn(binary, ["serve", "--config", configPath, "--port", "0"], { stdio: ["ignore", "pipe", "pipe"] });
    const server = { name, child, output: "" };
    servers.push(server);
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${name} did not listen within ${kStartMs} ms:\n${server.output}`)),
                                 kStartMs);
        const onData = (chunk) => {
            server.output += chunk.toString();
            const match = /websocket server listening on [^\s:]+:(\d+)/.exec(server.output);
            if (match && !server.port) {
                server.port = Number(match[1]);
                clearTimeout(timer);
                resolve(server);
            }
        };
        child.stdout.on("data", onData);
        child.stderr.on("data", onData);
        child.on("error", (error) => {
            clearTimeout(timer);
            reject(new Error(`${name}: cannot start ${binary}: ${error.message}`));
        });
        child.on("exit", (code, signal) => {
            server.exited = `exit code ${code}, signal ${signal}`;
            clearTimeout(timer);
            if (!server.port) reject(new Error(`${name} exited (${server.exited}) before listening:\n${server.output}`));
        });
    });
}

async function stopServers() {
    await Promise.all(servers.map((server) => new Promise((resolve) => {
        if (server.child.exitCode !== null || server.child.signalCode !== null) return resolve();
        const timer = setTimeout(() => server.child.kill("SIGKILL"), 10000);
        server.child.on("exit", () => {
            clearTimeout(timer);
            resolve();
        });
        server.child.kill("SIGTERM");
    })));
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers.

function describe(value) {
    if (value instanceof Error) return value.message;
    try {
        return JSON.stringify(value);
    } catch {
        return String(value);
    }
}

function withDeadline(promise, what, ms = kWaitMs) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function expectEqual(actual, expected, what) {
    if (!isDeepStrictEqual(actual, expected)) {
        throw new Error(`${what}: expected ${describe(expected)}, got ${describe(actual)}`);
    }
}

// A request that must fail: resolves with the reply payload dcrf-client rejects with.
async function expectRejected(promise, what) {
    let result;
    try {
        result = await withDeadline(promise, what);
    } catch (reply) {
        if (reply instanceof Error) throw reply;
        return reply;
    }
    throw new Error(`${what}: expected an error reply, got success with ${describe(result)}`);
}

// A subscription callback that records what it is called with (a copy: dcrf-client may reuse objects), and waits
// for the n-th call with a deadline.
function recorder(name) {
    const events = [];
    let waiters = [];
    const callback = (data, action) => {
        events.push({ action, data: JSON.parse(JSON.stringify(data)) });
        const ready = waiters.filter((w) => events.length >= w.count);
        waiters = waiters.filter((w) => events.length < w.count);
        for (const w of ready) w.resolve();
    };
    const waitFor = (count) => withDeadline(new Promise((resolve) => {
        if (events.length >= count) return resolve();
        waiters.push({ count, resolve });
    }), `${count} push(es) on ${name} (got so far: ${describe(events)})`).then(() => events.slice());
    return { events, callback, waitFor };
}

let uniqueCounter = 0;
function unique(prefix) {
    uniqueCounter += 1;
    return `${prefix}-${process.pid}-${uniqueCounter}`;
}

function connect(server, pkField) {
    const options = { websocket: { WebSocket, maxRetries: 5, connectionTimeout: 10000 } };
    if (pkField !== "pk") options.pkField = pkField;  // "pk" is the client's default: leave it unset.
    const client = dcrf.default.connect(`ws://127.0.0.1:${server.port}/ws/`, options);
    if (!(client instanceof dcrf.DCRFClient)) throw new Error("dcrf-client did not return a DCRFClient");
    return client;
}

// ---------------------------------------------------------------------------------------------------------------
// The scenarios. Each gets `a` and `b`, clients on different processes, the stream and the pkField; creations go
// through `a`, subscriptions through `b`.

function scenarios() {
    const row = (ctx, pk, title, body = "") => ({ [ctx.pkField]: pk, title, body });
    const create = async (ctx, title, body) => {
        const data = body === undefined ? { title } : { title, body };
        const created = await withDeadline(ctx.a.create(ctx.stream, data), `create ${title}`);
        const pk = created[ctx.pkField];
        if (!Number.isInteger(pk)) throw new Error(`create: no integer "${ctx.pkField}" in ${describe(created)}`);
        return pk;
    };
    const subscribe = async (ctx, client, pk, name) => {
        const events = recorder(name);
        const subscription = client.subscribe(ctx.stream, pk, events.callback);
        const reply = await withDeadline(subscription, `subscribe_instance ${pk} (${name})`);
        expectEqual(reply, null, `subscribe_instance reply data (${name})`);
        return { events, subscription };
    };
    // The first push after the 201 is exactly `expected`, and nothing came before it.
    const expectPushes = async (events, expected, what) => {
        const got = await events.waitFor(expected.length);
        expectEqual(got, expected, what);
    };

    return {
        async create(ctx) {
            const title = unique("created");
            const created = await withDeadline(ctx.a.create(ctx.stream, { title, [ctx.pkField]: 424242 }), "create");
            const pk = created[ctx.pkField];
            if (!Number.isInteger(pk) || pk === 424242) throw new Error(`create: bad "${ctx.pkField}" in ${describe(created)}`);
            expectEqual(created, row(ctx, pk, title), "create reply");
            expectEqual(await withDeadline(ctx.b.retrieve(ctx.stream, pk), "retrieve on the other process"),
                        row(ctx, pk, title), "retrieve after create");
        },
        async retrieve(ctx) {
            const title = unique("retrieved");
            const pk = await create(ctx, title, "text");
            expectEqual(await withDeadline(ctx.b.retrieve(ctx.stream, pk), "retrieve"), row(ctx, pk, title, "text"),
                        "retrieve reply");
            const missing = await expectRejected(ctx.b.retrieve(ctx.stream, 987654321), "retrieve of a missing row");
            expectEqual([missing.response_status, missing.errors], [404, ["Not found"]], "retrieve of a missing row");
        },
        async list(ctx) {
            const one = unique("listed"), two = unique("listed");
            const pk1 = await create(ctx, one);
            const pk2 = await create(ctx, two);
            const rows = await withDeadline(ctx.b.list(ctx.stream), "list");
            if (!Array.isArray(rows)) throw new Error(`list: expected an array, got ${describe(rows)}`);
            const mine = rows.filter((r) => r[ctx.pkField] === pk1 || r[ctx.pkField] === pk2);
            expectEqual(mine, [row(ctx, pk1, one), row(ctx, pk2, two)], "list rows");
        },
        async patch(ctx) {
            const pk = await create(ctx, unique("patch"), "kept");
            const title = unique("patched");
            expectEqual(await withDeadline(ctx.b.patch(ctx.stream, pk, { title }), "patch"), row(ctx, pk, title, "kept"),
                        "patch reply");
            expectEqual(await withDeadline(ctx.a.retrieve(ctx.stream, pk), "retrieve after patch"),
                        row(ctx, pk, title, "kept"), "retrieve after patch");
        },
        async update(ctx) {
            const pk = await create(ctx, unique("update"), "old");
            const title = unique("updated");
            expectEqual(await withDeadline(ctx.b.update(ctx.stream, pk, { title, body: "new" }), "update"),
                        row(ctx, pk, title, "new"), "update reply");
            expectEqual(await withDeadline(ctx.a.retrieve(ctx.stream, pk), "retrieve after update"),
                        row(ctx, pk, title, "new"), "retrieve after update");
        },
        async delete(ctx) {
            const pk = await create(ctx, unique("delete"));
            expectEqual(await withDeadline(ctx.b.delete(ctx.stream, pk), "delete"), null, "delete reply data");
            const gone = await expectRejected(ctx.a.retrieve(ctx.stream, pk), "retrieve after delete");
            expectEqual([gone.response_status, gone.errors], [404, ["Not found"]], "retrieve after delete");
        },
        async update_errors(ctx) {
            const title = unique("keep");
            const pk = await create(ctx, title);
            const blank = await expectRejected(ctx.b.update(ctx.stream, pk, { title: "" }), "update with a blank title");
            expectEqual([blank.response_status, blank.errors], [400, [{ title: ["This field may not be blank."] }]],
                        "update with a blank title");
            const missing = await expectRejected(ctx.b.update(ctx.stream, pk, { body: "x" }), "update without title");
            expectEqual([missing.response_status, missing.errors], [400, [{ title: ["This field is required."] }]],
                        "update without title");
            const absent = await expectRejected(ctx.b.update(ctx.stream, 987654321, { title: "x" }),
                                                "update of a missing row");
            expectEqual([absent.response_status, absent.errors], [404, ["Not found"]], "update of a missing row");
            expectEqual(await withDeadline(ctx.a.retrieve(ctx.stream, pk), "retrieve after failed updates"),
                        row(ctx, pk, title), "row after failed updates");
        },
        async delete_errors(ctx) {
            const absent = await expectRejected(ctx.b.delete(ctx.stream, 987654321), "delete of a missing row");
            expectEqual([absent.response_status, absent.errors], [404, ["Not found"]], "delete of a missing row");
            const pk = await create(ctx, unique("twice"));
            await withDeadline(ctx.a.delete(ctx.stream, pk), "first delete");
            const again = await expectRejected(ctx.b.delete(ctx.stream, pk), "second delete");
            expectEqual([again.response_status, again.errors], [404, ["Not found"]], "second delete");
        },
        async subscribe_update(ctx) {
            const pk = await create(ctx, unique("sub"));
            const { events } = await subscribe(ctx, ctx.b, pk, "subscriber");
            const title = unique("sub-updated");
            await withDeadline(ctx.b.patch(ctx.stream, pk, { title }), "patch by the subscriber");
            await expectPushes(events, [{ action: "update", data: row(ctx, pk, title) }], "pushes after the patch");
        },
        async subscribe_delete(ctx) {
            const pk = await create(ctx, unique("sub-del"));
            const { events } = await subscribe(ctx, ctx.b, pk, "subscriber");
            await withDeadline(ctx.b.delete(ctx.stream, pk), "delete by the subscriber");
            await expectPushes(events, [{ action: "delete", data: { [ctx.pkField]: pk } }], "pushes after the delete");
        },
        async subscribe_multiple(ctx) {
            const pk1 = await create(ctx, unique("multi"));
            const pk2 = await create(ctx, unique("multi"));
            const first = await subscribe(ctx, ctx.b, pk1, "subscription 1");
            const second = await subscribe(ctx, ctx.b, pk2, "subscription 2");
            const t1 = unique("multi-1"), t2 = unique("multi-2");
            await withDeadline(ctx.a.patch(ctx.stream, pk1, { title: t1 }), "patch of row 1");
            await withDeadline(ctx.a.patch(ctx.stream, pk2, { title: t2 }), "patch of row 2");
            await expectPushes(first.events, [{ action: "update", data: row(ctx, pk1, t1) }], "pushes of row 1");
            await expectPushes(second.events, [{ action: "update", data: row(ctx, pk2, t2) }], "pushes of row 2");
            // Each subscription is called for its own row only.
            await withDeadline(ctx.a.delete(ctx.stream, pk1), "delete of row 1");
            await expectPushes(first.events, [{ action: "update", data: row(ctx, pk1, t1) },
                                              { action: "delete", data: { [ctx.pkField]: pk1 } }], "pushes of row 1");
            expectEqual(second.events.events, [{ action: "update", data: row(ctx, pk2, t2) }], "pushes of row 2 at the end");
        },
        async cross_connection_update(ctx) {
            const pk = await create(ctx, unique("cross"));
            const { events } = await subscribe(ctx, ctx.b, pk, "subscriber");
            const t1 = unique("cross-1"), t2 = unique("cross-2");
            await withDeadline(ctx.a.update(ctx.stream, pk, { title: t1, body: "b" }), "update by the other client");
            await expectPushes(events, [{ action: "update", data: row(ctx, pk, t1, "b") }], "pushes after the update");
            await withDeadline(ctx.a.patch(ctx.stream, pk, { title: t2 }), "patch by the other client");
            await expectPushes(events, [{ action: "update", data: row(ctx, pk, t1, "b") },
                                        { action: "update", data: row(ctx, pk, t2, "b") }], "pushes after the patch");
        },
        async cross_connection_delete(ctx) {
            const pk = await create(ctx, unique("cross-del"));
            const { events } = await subscribe(ctx, ctx.b, pk, "subscriber");
            await withDeadline(ctx.a.delete(ctx.stream, pk), "delete by the other client");
            await expectPushes(events, [{ action: "delete", data: { [ctx.pkField]: pk } }], "pushes after the delete");
        },
        async cancel(ctx) {
            const pk = await create(ctx, unique("cancel"));
            const cancelled = await subscribe(ctx, ctx.b, pk, "cancelled subscription");
            const kept = await subscribe(ctx, ctx.b, pk, "kept subscription");
            if (cancelled.subscription.cancel() !== true) throw new Error("cancel() did not report an active subscription");
            const title = unique("after-cancel");
            await withDeadline(ctx.a.patch(ctx.stream, pk, { title }), "patch after cancel");
            // Pushes come in subscription order on one socket: once the kept one has its push, the cancelled one's
            // frame (if the server still sends it) has already reached the client, which must not call back.
            await expectPushes(kept.events, [{ action: "update", data: row(ctx, pk, title) }], "kept subscription");
            expectEqual(cancelled.events.events, [], "pushes to the cancelled subscription");
        },
    };
}

// ---------------------------------------------------------------------------------------------------------------
// Rounds.

async function runRound(pkField, round, [one, two]) {
    const stream = pkField === "pk" ? "items_pk" : "items_id";
    // Alternate which process creates and which subscribes.
    const [serverA, serverB] = round % 2 === 1 ? [one, two] : [two, one];
    const failures = [];
    let passed = 0;
    for (const [name, scenario] of Object.entries(scenarios())) {
        const a = connect(serverA, pkField);
        const b = connect(serverB, pkField);
        try {
            await scenario({ a, b, stream, pkField });
            passed += 1;
        } catch (error) {
            failures.push(`pkField ${pkField}, round ${round}, ${name}: ${describe(error)}`);
        } finally {
            a.close();
            b.close();
        }
    }
    console.log(`pkField ${pkField} round ${round}/${rounds}: ${passed} passed, ${failures.length} failed` +
                ` (creator on ${serverA.name}, subscriber on ${serverB.name})`);
    for (const failure of failures) console.log(`FAIL ${failure}`);
    return failures;
}

async function main() {
    console.log(`dcrf_client: starting two servers on one ${db.engine} database and ${redisUrl}`);
    // One after the other: two processes opening a new database file at the same instant can fail in SQLite's
    // switch to WAL ("database is locked"), a start-up race apart from what this test checks.
    const pair = [await startServer("server-1"), await startServer("server-2")];
    console.log(`dcrf_client: servers listen on ports ${pair[0].port} and ${pair[1].port}; ${rounds} round(s) per pkField`);
    const failures = [];
    for (const pkField of ["id", "pk"]) {
        for (let round = 1; round <= rounds; round += 1) {
            failures.push(...await runRound(pkField, round, pair));
            for (const server of pair) {
                if (server.exited) throw new Error(`${server.name} exited (${server.exited}):\n${server.output}`);
            }
        }
    }
    await stopServers();
    if (failures.length > 0) {
        console.log(`FAIL dcrf_client: ${failures.length} scenario run(s) failed:`);
        for (const failure of failures) console.log(`  ${failure}`);
        process.exit(1);
    }
    console.log(`dcrf_client: every scenario passed (${rounds} round(s) per pkField)`);
    process.exit(0);
}

main().catch((error) => {
    console.log(`FAIL dcrf_client: ${error && error.stack ? error.stack : error}`);
    for (const server of servers) console.log(`--- ${server.name} output ---\n${server.output}`);
    process.exit(1);
});
