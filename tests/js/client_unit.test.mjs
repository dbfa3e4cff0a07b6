// clients/js/syncline.mjs against a tiny fake server (a plain `ws` server in this process), for what a real server
// does not do on demand: a push with an old or repeated version is dropped; a re-subscribe after a reconnect carries
// `since` and `epoch`, and the catch-up push at the 201's version is taken; a new epoch resets; requests resolve on
// 2xx, reject with status and errors otherwise, reject on timeout and on a lost connection; requests made offline
// wait for the connection; a multiplexer stream wraps frames.
import assert from "node:assert/strict";

import {SynclineClient, SynclineError} from "../../clients/js/syncline.mjs";
import {Condition, progress, requireNodeModules, runTest, within} from "./support.mjs";

const require = requireNodeModules();
const WebSocket = require("ws");

/** A fake server: records every client frame (per connection), lets the test answer and drop connections. */
class FakeServer {
    constructor() {
        this.changed = new Condition();
        this.frames = [];  // {connection, frame}
        this.connections = [];
        this.handler = () => {};
    }

    async start() {
        this.server = new WebSocket.WebSocketServer({host: "127.0.0.1", port: 0});
        await new Promise((resolve) => this.server.once("listening", resolve));
        this.url = `ws://127.0.0.1:${this.server.address().port}/ws/items/`;
        this.server.on("connection", (socket) => {
            const connection = this.connections.length;
            this.connections.push(socket);
            socket.on("message", (data) => {
                const frame = JSON.parse(String(data));
                this.frames.push({connection, frame});
                this.handler(socket, frame);
                this.changed.notify();
            });
            socket.on("close", () => this.changed.notify());
            this.changed.notify();
        });
    }

    /** The first frame (after `fromIndex` frames) whose action is `action` and that `match`es, with a deadline. */
    async frame(action, fromIndex = 0, match = () => true) {
        let found;
        await this.changed.until(() => {
            found = this.frames.slice(fromIndex).find(
                (entry) => (entry.frame.payload ?? entry.frame).action === action && match(entry.frame));
            return found !== undefined;
        }, `a ${action} frame`, 5000);
        return found;
    }

    last() {
        return this.connections[this.connections.length - 1];
    }

    stop() {
        for (const socket of this.connections) socket.terminate();
        this.server.close();
    }
}

/** The 201 of a subscribe_instance, with syncline's version and epoch. */
function subscribed(rid, version, epoch) {
    return {
        errors: [],
        data: null,
        action: "subscribe_instance",
        response_status: 201,
        request_id: rid,
        version,
        epoch
    };
}

/** An update push of row 1 holding `n`. */
function update(rid, version, epoch, n) {
    return {errors: [], data: {id: 1, n}, action: "update", response_status: 200, request_id: rid, version, epoch};
}

function send(socket, frame) {
    socket.send(JSON.stringify(frame));
}

async function main() {
    const fake = new FakeServer();
    await fake.start();
    progress(`fake server on ${fake.url}`);
    fake.handler = (socket, frame) => {
        if (frame.action === "retrieve" && frame.pk === 1) {
            send(socket, {
                errors: [],
                data: {id: 1, n: 5},
                action: "retrieve",
                response_status: 200,
                request_id: frame.request_id
            });
        } else if (frame.action === "retrieve") {
            send(socket, {
                errors: ["Not found"],
                data: null,
                action: "retrieve",
                response_status: 404,
                request_id: frame.request_id
            });
        }
        // "silent" is never answered; subscribe_instance is answered by the test below.
    };

    const client =
        new SynclineClient(fake.url, {WebSocket, requestTimeoutMs: 400, backoff: {initialMs: 20, maxMs: 50}});
    const delivered = [];
    const notified = new Condition();
    client.on("open", () => notified.notify());
    client.on("close", () => notified.notify());

    progress("phase 1: requests resolve on 2xx, reject with status and errors, reject on timeout");
    const reply = await client.request("retrieve", {pk: 1});
    assert.deepEqual(reply.data, {id: 1, n: 5});
    await assert.rejects(client.request("retrieve", {pk: 2}), (error) => {
        assert.ok(error instanceof SynclineError);
        assert.equal(error.status, 404);
        assert.deepEqual(error.errors, ["Not found"]);
        return true;
    });
    await assert.rejects(client.request("silent"), (error) => {
        assert.ok(error instanceof SynclineError);
        assert.equal(error.status, 0);
        assert.match(error.message, /timed out/);
        return true;
    });
    await assert.rejects(client.request("retrieve", {pk: 10n}), TypeError);  // BigInt: not JSON, rejected at once
    const ids = fake.frames.map((entry) => entry.frame.request_id);
    assert.equal(new Set(ids).size, ids.length, `request_ids are unique: ${ids}`);

    progress("phase 2: a push not newer than the last version seen is dropped");
    const subscription = client.subscribeInstance(1, (change) => {
        delivered.push(change);
        notified.notify();
    });
    const subscribe1 = await fake.frame("subscribe_instance");
    assert.equal(subscribe1.frame.pk, 1);
    assert.equal(subscribe1.frame.since, undefined, "a first subscribe has no since");
    const rid = subscribe1.frame.request_id;
    const socket1 = fake.last();
    send(socket1, subscribed(rid, 5, "e1"));
    await within(subscription.ready, 5000, "the subscription's 201");
    for (const version of [4, 5, 6, 6, 3, 7]) {
        send(socket1, update(rid, version, "e1", version));
    }
    // Row 2: a server whose 201 carries no version, and no push before the connection drops.
    const quiet = client.subscribeInstance(2, () => {});
    const quietSubscribe = await fake.frame("subscribe_instance", 0, (frame) => frame.pk === 2);
    send(socket1, {
        errors: [],
        data: null,
        action: "subscribe_instance",
        response_status: 201,
        request_id: quietSubscribe.frame.request_id
    });
    await within(quiet.ready, 5000, "row 2's 201");
    await client.request("retrieve", {pk: 1});  // answered after the pushes sent before it: they are all handled
    assert.equal(subscription.dropped, 4);
    assert.deepEqual(delivered.map((change) => change.version), [6, 7]);
    assert.equal(delivered[1].action, "update");
    assert.deepEqual(delivered[1].data, {id: 1, n: 7});

    progress("phase 3: after a reconnect the re-subscribe carries since and epoch; the catch-up push is taken");
    const before = fake.frames.length;
    const inFlight = client.request("silent");  // sent, then the connection drops: rejects at once
    await fake.frame("silent", before);
    socket1.terminate();
    await assert.rejects(inFlight, /connection closed/);
    const subscribe2 = await fake.frame("subscribe_instance", before, (frame) => frame.pk === 1);
    const quietSubscribe2 = await fake.frame("subscribe_instance", before, (frame) => frame.pk === 2);
    assert.equal(quietSubscribe2.frame.since, 0, "a re-subscribe without a known version asks since 0");
    quiet.unsubscribe();
    assert.equal(subscribe2.connection, 1, "re-subscribed on the new connection");
    assert.equal(subscribe2.frame.since, 7);
    assert.equal(subscribe2.frame.epoch, "e1");
    assert.equal(subscribe2.frame.request_id, rid);
    const socket2 = fake.last();
    // The row changed to version 9 while the client was away: 201 at version 9, then the current state at 9.
    send(socket2, subscribed(rid, 9, "e1"));
    send(socket2, update(rid, 9, "e1", 9));
    send(socket2, update(rid, 9, "e1", 9));
    await client.request("retrieve", {pk: 1});
    assert.equal(subscription.dropped, 5);
    assert.equal(delivered.length, 3);
    assert.equal(delivered[2].version, 9);

    progress("phase 4: a new epoch resets the versions kept");
    send(socket2, update(rid, 2, "e2", 100));
    send(socket2, update(rid, 2, "e2", 100));
    await client.request("retrieve", {pk: 1});
    assert.equal(subscription.dropped, 6);
    assert.equal(delivered.length, 4);
    assert.equal(delivered[3].epoch, "e2");
    const before3 = fake.frames.length;
    socket2.terminate();
    const subscribe3 = await fake.frame("subscribe_instance", before3);
    assert.equal(subscribe3.frame.since, 2);
    assert.equal(subscribe3.frame.epoch, "e2");
    // The database was recreated again: the 201 names another epoch, and the current state follows.
    send(fake.last(), subscribed(rid, 1, "e3"));
    send(fake.last(), update(rid, 1, "e3", 1));
    await notified.until(() => delivered.length === 5, "version 1 of epoch e3", 5000);
    assert.equal(delivered[4].epoch, "e3");

    progress("phase 5: a request made while disconnected waits for the connection");
    const before4 = fake.frames.length;
    const connections = fake.connections.length;
    fake.last().terminate();
    await notified.until(() => !client.connected, "the client to see the close", 5000);
    const offline = client.request("retrieve", {pk: 1});
    await fake.changed.until(() => fake.connections.length > connections, "the reconnect", 5000);
    const offlineReply = await offline;
    assert.equal(offlineReply.data.n, 5);
    const sentAfter = fake.frames.slice(before4).map((entry) => entry.frame.action);
    assert.deepEqual(sentAfter.slice(0, 2), ["subscribe_instance", "retrieve"], "subscriptions go first");

    progress("phase 6: unsubscribe tells the server and stops callbacks");
    const before5 = fake.frames.length;
    subscription.unsubscribe();
    const unsubscribe = await fake.frame("unsubscribe_instance", before5);
    assert.equal(unsubscribe.frame.request_id, rid);
    assert.equal(unsubscribe.frame.pk, 1);
    client.close();
    await assert.rejects(client.request("retrieve", {pk: 1}), /closed/);

    progress("phase 7: a multiplexer stream wraps requests and unwraps replies");
    fake.handler = (socket, frame) => {
        if (frame.stream === "items" && frame.payload?.action === "retrieve") {
            send(socket, {
                stream: "other",
                payload: {
                    errors: [],
                    data: {wrong: true},
                    action: "retrieve",
                    response_status: 200,
                    request_id: frame.payload.request_id
                }
            });
            send(socket, {
                stream: "items",
                payload: {
                    errors: [],
                    data: {id: 1},
                    action: "retrieve",
                    response_status: 200,
                    request_id: frame.payload.request_id
                }
            });
        }
    };
    const streamed = new SynclineClient(fake.url, {WebSocket, stream: "items", requestTimeoutMs: 2000});
    const streamedReply = await streamed.request("retrieve", {pk: 1});
    assert.deepEqual(streamedReply.data, {id: 1});
    streamed.close();

    progress("phase 8: a list subscription: snapshot, per-row drops, re-subscribe with since, fallback to a snapshot");
    fake.handler = (socket, frame) => {
        if (frame.action === "ping") {
            send(socket, {errors: [], data: null, action: "ping", response_status: 200, request_id: frame.request_id});
        }
    };
    const lists =
        new SynclineClient(fake.url, {WebSocket, requestTimeoutMs: 2000, backoff: {initialMs: 20, maxMs: 50}});
    const changes = [];
    const list = lists.subscribeList({author: "a"}, (change) => changes.push(change), {snapshot: true});
    const before6 = fake.frames.length;
    const listSubscribe1 = await fake.frame("subscribe_list", before6);
    assert.deepEqual(listSubscribe1.frame.filter, {author: "a"});
    assert.equal(listSubscribe1.frame.snapshot, true);
    assert.equal(listSubscribe1.frame.since, undefined);
    const lrid = listSubscribe1.frame.request_id;
    const listSocket1 = fake.last();
    const listReply = (data, versions, version) => ({
        errors: [],
        data,
        versions,
        version,
        epoch: "e1",
        action: "subscribe_list",
        response_status: 201,
        request_id: lrid
    });
    const listPush = (action, data, version) =>
        ({errors: [], data, action, response_status: 200, request_id: lrid, version, epoch: "e1"});
    send(listSocket1, listReply([{id: 1, n: 1}, {id: 2, n: 1}], [3, 5], 6));
    await within(list.ready, 5000, "the list's 201");
    send(listSocket1, listPush("update", {id: 1, n: 0}, 3));  // not newer than the snapshot's row: dropped
    send(listSocket1, listPush("update", {id: 1, n: 7}, 7));
    send(listSocket1, listPush("create", {id: 3, n: 8}, 8));
    send(listSocket1, listPush("delete", {pk: 2}, 9));
    send(listSocket1, listPush("update", {id: 2, n: 4}, 4));  // older than the delete: dropped
    await lists.request("ping");
    assert.deepEqual(
        changes.map((change) => [change.action, change.version]),
        [["snapshot", 6], ["update", 7], ["create", 8], ["delete", 9]]);
    assert.equal(list.dropped, 2);
    assert.deepEqual([...list.rows.keys()].sort(), [1, 3]);
    const before7 = fake.frames.length;
    listSocket1.terminate();
    const listSubscribe2 = await fake.frame("subscribe_list", before7);
    assert.equal(listSubscribe2.frame.since, 6, "since is the version of the last 201, not of a push");
    assert.equal(listSubscribe2.frame.epoch, "e1");
    assert.equal(listSubscribe2.frame.snapshot, undefined);
    // A server that does not take since: the client subscribes afresh with a snapshot.
    send(fake.last(), {
        errors: ["since is not supported"],
        data: null,
        action: "subscribe_list",
        response_status: 400,
        request_id: lrid
    });
    const listSubscribe3 = await fake.frame("subscribe_list", before7 + 1);
    assert.equal(listSubscribe3.frame.snapshot, true);
    assert.equal(listSubscribe3.frame.since, undefined);
    send(fake.last(), listReply([{id: 1, n: 7}, {id: 3, n: 10}], [7, 10], 10));
    await lists.request("ping");
    assert.deepEqual(changes[4].action, "snapshot");
    assert.deepEqual(changes[4].data, [{id: 1, n: 7}, {id: 3, n: 10}]);
    assert.deepEqual(list.rows.get(3), {id: 3, n: 10});
    lists.close();
    fake.stop();
}

runTest("client_unit", 30000, main);
