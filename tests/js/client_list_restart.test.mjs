// clients/js/syncline.mjs list subscriptions (`subscribe_list` with a snapshot, re-subscribed with `since` and `epoch`)
// against real `syncline serve` processes killed and restarted during writes, as client_restart does for rows: rows
// change, leave and re-enter the filter; every client must end with exactly the rows `list` returns, and must have
// been delivered strictly increasing versions per row. Skips (77) while the server's subscribe_list 201 carries no
// snapshot (`versions`), i.e. until the server side of issue 11's list snapshots is there.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";

import {SynclineClient} from "../../clients/js/syncline.mjs";
import {Condition, freePort, makeTempDir, progress, requireNodeModules} from "./support.mjs";
import {runTest, ServeProcess, Skip, within} from "./support.mjs";

const require = requireNodeModules();
const WebSocket = require("ws");

const kClients = 5;
const kRows = 10;
const kRestarts = 2;
const kWritesBetweenRestarts = 60;
const kBackoff = {
    initialMs: 20,
    maxMs: 300,
    stableMs: 1000
};
const kFilter = {
    tag: "a"
};

const dir = makeTempDir("syncline-js-list-restart-");

/** The tag a row has after its n-th write: every third write moves it out of the filter. */
function tagFor(n) {
    return n % 3 === 0 ? "b" : "a";
}

async function main() {
    const port = await freePort();
    const writerPort = await freePort();
    const configFile = path.join(dir, "config.json");
    fs.writeFileSync(configFile, JSON.stringify({
        database: "list.db",
        listen: {host: "127.0.0.1", port},
        workers: 2,
        models: {
            items: {
                fields: {
                    id: {type: "integer", primary_key: true},
                    n: {type: "integer", default: 0},
                    tag: {type: "text", max_length: 10, default: "a"},
                },
            },
        },
        routes: {
            "/ws/items/": {
                model: "items",
                mixins: ["list", "retrieve", "create", "patch", "observe_instance", "observe_list"],
                filter_fields: ["tag"],
            },
        },
    }));
    const server = new ServeProcess(configFile, port, path.join(dir, "serve-a.log"));
    if (!server.available()) {
        throw new Skip("SYNCLINE_BIN_DIR/syncline not found");
    }
    const writerServer = new ServeProcess(configFile, writerPort, path.join(dir, "serve-b.log"));
    await server.start();
    await writerServer.start();
    const url = `ws://127.0.0.1:${port}/ws/items/`;
    progress(`server A (clients) on ${url}, server B (writer) on port ${writerPort}`);

    const options = {WebSocket, backoff: kBackoff, requestTimeoutMs: 3000};
    const writer = new SynclineClient(`ws://127.0.0.1:${writerPort}/ws/items/`, options);
    const pks = [];
    for (let i = 0; i < kRows; i++) pks.push((await writer.request("create", {data: {n: 0, tag: "a"}})).data.id);
    progress(`created ${kRows} rows`);

    const changed = new Condition();
    const violations = [];
    const clients = [];
    for (let c = 0; c < kClients; c++) {
        const client = new SynclineClient(url, options);
        const state = {client, versions: new Map(), deliveries: 0, list: null};
        const record = (pk, version) => {
            const last = state.versions.get(pk);
            if (typeof version !== "number") {
                violations.push(`client ${c} row ${pk}: no version`);
            } else if (last !== undefined && version <= last) {
                violations.push(`client ${c} row ${pk}: version ${version} after ${last}`);
            }
            state.versions.set(pk, version);
        };
        state.list = client.subscribeList(kFilter, (change) => {
            if (change.action !== "snapshot") record(change.data.id ?? change.data.pk, change.version);
            state.deliveries++;
            changed.notify();
        }, {snapshot: true});
        clients.push(state);
    }
    const replies = await within(Promise.all(clients.map((state) => state.list.ready)), 15000, "every list's 201");
    if (!Array.isArray(replies[0].versions)) {
        throw new Skip("this server's subscribe_list 201 carries no snapshot versions (issue 11 server side)");
    }
    progress(`${kClients} clients subscribed to the list ${JSON.stringify(kFilter)}`);

    const expected = new Map(pks.map((pk) => [pk, 0]));
    let written = 0;
    let stop = false;
    const writes = (async () => {
        for (let i = 0; !stop; i++) {
            const pk = pks[i % kRows];
            const n = expected.get(pk) + 1;
            for (;;) {
                try {
                    await writer.request("patch", {pk, data: {n, tag: tagFor(n)}});
                    break;
                } catch (error) {
                    if (error.status !== 0 && error.status !== 503) throw error;
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
        await server.kill();
        progress(`restart ${restart}: server A SIGKILLed after ${written} writes`);
        await server.start();
        progress(`restart ${restart}: healthy again`);
    }
    const target = written + kWritesBetweenRestarts;
    await changed.until(() => written >= target, `${target} writes after the last restart`, 20000);
    await server.kill();
    const lastTarget = written + 2 * kRows;
    await changed.until(() => written >= lastTarget, `${lastTarget} writes while A is down`, 20000);
    stop = true;
    await writes;
    progress(`writes stopped while A is down: ${written} writes`);
    await server.start();
    progress("server A healthy again");

    const final = (await writer.request("list", {filter: kFilter})).data;
    const want = JSON.stringify(final.map((row) => [row.id, row]).sort((x, y) => x[0] - y[0]));
    const have = (state) => JSON.stringify([...state.list.rows.entries()].sort((x, y) => x[0] - y[0]));
    await changed.until(
        () => clients.every((state) => have(state) === want),
        () => `every client with the final list ${want}; client 0 has ${have(clients[0])}`, 20000);
    progress(`every client holds the final list (${final.length} rows)`);
    assert.deepEqual(violations, [], "versions strictly increasing per client and row");

    for (const state of clients) state.client.close();
    writer.close();
    await server.kill();
    await writerServer.kill();
}

runTest("client_list_restart", 60000, main, (passed) => {
    if (passed)
        fs.rmSync(dir, {recursive: true, force: true});
    else
        console.error(`files kept in ${dir}`);
});
