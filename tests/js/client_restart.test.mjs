// clients/js/syncline.mjs against a real `syncline serve` that is SIGKILLed and restarted (same port, same SQLite
// file) while a writer keeps patching rows: every client must end with every row at its final state (as `retrieve`
// reads it), and must have been delivered strictly increasing versions per row (no duplicate, nothing backwards).
//
// Two server processes share the database file (in-process bus; each sees the other's writes through the file):
// A serves the subscribed clients, B the writer. A is killed and restarted during the writes, B once with it (the
// writer retries), and the last writes happen while A is down, so the clients can only reach the final state by
// re-subscribing with `since` when A is back.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";

import {SynclineClient} from "../../clients/js/syncline.mjs";
import {Condition, freePort, makeTempDir, progress, requireNodeModules} from "./support.mjs";
import {runTest, ServeProcess, Skip, within} from "./support.mjs";

const require = requireNodeModules();
const WebSocket = require("ws");

const kClients = 20;
const kRows = 10;
const kRestarts = 3;
const kWritesBetweenRestarts = 60;  // successful writes before each kill, and after the last restart
const kBackoff = {
    initialMs: 20,
    maxMs: 300,
    stableMs: 1000
};

const dir = makeTempDir("syncline-js-restart-");

async function main() {
    const port = await freePort();
    const configFile = path.join(dir, "config.json");
    fs.writeFileSync(configFile, JSON.stringify({
        database: "restart.db",
        listen: {host: "127.0.0.1", port},
        workers: 2,
        models: {items: {fields: {id: {type: "integer", primary_key: true}, n: {type: "integer", default: 0}}}},
        routes: {"/ws/items/": {model: "items", mixins: ["list", "retrieve", "create", "patch", "observe_instance"]}},
    }));
    const server = new ServeProcess(configFile, port, path.join(dir, "serve-a.log"));
    if (!server.available()) {
        throw new Skip("SYNCLINE_BIN_DIR/syncline not found");
    }
    await server.start();
    const writerPort = await freePort();
    const writerServer = new ServeProcess(configFile, writerPort, path.join(dir, "serve-b.log"));
    await writerServer.start();
    const url = `ws://127.0.0.1:${port}/ws/items/`;
    progress(`server A (clients) on ${url}, server B (writer) on port ${writerPort}, database ${dir}/restart.db`);

    const options = {WebSocket, backoff: kBackoff, requestTimeoutMs: 3000};
    const writer = new SynclineClient(`ws://127.0.0.1:${writerPort}/ws/items/`, options);
    const pks = [];
    for (let i = 0; i < kRows; i++) pks.push((await writer.request("create", {data: {n: 0}})).data.id);
    progress(`created ${kRows} rows`);

    // Every client subscribes to every row and records what it is delivered.
    const changed = new Condition();
    const violations = [];
    const clients = [];
    for (let c = 0; c < kClients; c++) {
        const client = new SynclineClient(url, options);
        const state = {client, subscriptions: [], rows: new Map(), versions: new Map(), deliveries: 0};
        for (const pk of pks) {
            state.versions.set(pk, []);
            state.subscriptions.push(client.subscribeInstance(pk, (change) => {
                const seen = state.versions.get(pk);
                const last = seen[seen.length - 1];
                if (typeof change.version !== "number") {
                    violations.push(`client ${c} row ${pk}: a push without a version`);
                } else if (last !== undefined && change.version <= last) {
                    violations.push(`client ${c} row ${pk}: version ${change.version} after ${last}`);
                }
                seen.push(change.version);
                state.rows.set(pk, change.data);
                state.deliveries++;
                changed.notify();
            }));
        }
        clients.push(state);
    }
    await within(
        Promise.all(clients.flatMap((state) => state.subscriptions.map((s) => s.ready))), 15000,
        "every subscription's 201");
    progress(`${kClients} clients subscribed to ${kRows} rows each`);

    // The writer: patches rows round robin with absolute values, retrying a failed write (the same value again, so
    // a write that ran but whose reply was lost is harmless) until told to stop.
    const expected = new Map(pks.map((pk) => [pk, 0]));
    let written = 0;
    let failures = 0;
    let stop = false;
    const writes = (async () => {
        for (let i = 0; !stop; i++) {
            const pk = pks[i % kRows];
            const n = expected.get(pk) + 1;
            for (;;) {
                try {
                    await writer.request("patch", {pk, data: {n}});
                    break;
                } catch (error) {
                    // Lost connections, timeouts and a busy database (503: two processes share the file) are retried.
                    if (error.status !== 0 && error.status !== 503) throw error;
                    failures++;
                    // The client queues the retry until it is connected again; no sleep needed.
                }
            }
            expected.set(pk, n);
            written++;
            changed.notify();
        }
    })();

    for (let restart = 1; restart <= kRestarts; restart++) {
        const target = written + kWritesBetweenRestarts;
        await changed.until(() => written >= target, `${target} writes`, 20000);
        const both = restart === 2;
        await server.kill();
        if (both) await writerServer.kill();
        progress(`restart ${restart}: server A${both ? " and B" : ""} SIGKILLed after ${written} writes`);
        await server.start();
        if (both) await writerServer.start();
        progress(`restart ${restart}: healthy again`);
    }
    const target = written + kWritesBetweenRestarts;
    await changed.until(() => written >= target, `${target} writes after the last restart`, 20000);
    await server.kill();
    const lastTarget = written + 2 * kRows;
    await changed.until(() => written >= lastTarget, `${lastTarget} writes while A is down`, 20000);
    stop = true;
    await writes;
    progress(`writes stopped while A is down: ${written} writes, ${failures} retried`);
    await server.start();
    progress("server A healthy again");

    // The final state, as retrieve reads it, must match what the writer wrote, and every client must reach it.
    const final = new Map();
    for (const pk of pks) {
        const row = (await writer.request("retrieve", {pk})).data;
        assert.equal(row.n, expected.get(pk), `row ${pk} holds the last value written`);
        final.set(pk, row);
    }
    const behind = () => clients.flatMap(
        (state, c) => pks.filter((pk) => JSON.stringify(state.rows.get(pk)) !== JSON.stringify(final.get(pk)))
                          .map(
                              (pk) => `client ${c} row ${pk}: ${JSON.stringify(state.rows.get(pk))} (want ${
                                  JSON.stringify(final.get(pk))})`));
    await changed.until(
        () => behind().length === 0, () => `every client at the final state; behind: ${behind().slice(0, 5)}`, 20000);
    const deliveries = clients.reduce((sum, state) => sum + state.deliveries, 0);
    const dropped = clients.reduce((sum, state) => sum + state.subscriptions.reduce((s, x) => s + x.dropped, 0), 0);
    progress(`every client at the final state (${deliveries} deliveries, ${dropped} pushes dropped by the client)`);
    assert.deepEqual(violations, [], "versions strictly increasing per client and row");

    for (const state of clients) state.client.close();
    writer.close();
    await server.kill();
    await writerServer.kill();
}

runTest("client_restart", 60000, main, (passed) => {
    if (passed)
        fs.rmSync(dir, {recursive: true, force: true});
    else
        console.error(`files kept in ${dir}`);
});
