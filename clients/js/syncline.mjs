// syncline JavaScript client: one ES module, no build step, no dependencies beyond a WebSocket class (the browser's,
// or the `ws` package on Node.js 18+). Wire contract: docs/protocol.md (DCRF-compatible, plus syncline's `version`,
// `since` and `epoch` extensions). See clients/js/README.md.

/** An error reply, a timeout or a lost connection, as the rejection of {@link SynclineClient#request}. */
export class SynclineError extends Error {
    /**
     * @param {string} message
     * @param {number} status the reply's `response_status`; 0 when no reply came (timeout, disconnect, close)
     * @param {Array<any>} errors the reply's `errors` list (empty when no reply came)
     * @param {object|null} reply the whole reply frame, or null
     */
    constructor(message, status, errors = [], reply = null) {
        super(message);
        this.name = "SynclineError";
        this.status = status;
        this.errors = errors;
        this.reply = reply;
    }
}

const kPushActions = new Set(["create", "update", "delete"]);
const kOpen = 1;  // WebSocket.OPEN, the same in browsers and in `ws`

function isVersion(v) {
    return typeof v === "number" && Number.isFinite(v);
}

/**
 * A connection to one syncline route (or one stream of a multiplexer route) that reconnects by itself.
 *
 * - {@link SynclineClient#request} sends a request and resolves with its reply.
 * - {@link SynclineClient#subscribeInstance} and {@link SynclineClient#subscribeList} call you back on every change;
 *   after a reconnect they re-subscribe with the last `version` and `epoch` seen (`since`), so no change is lost,
 *   and a push whose version is not newer than the last one seen for its row is dropped, so no version is delivered
 *   twice or backwards.
 * - The socket reconnects after any close, with exponential backoff and jitter, until {@link SynclineClient#close}.
 *
 * Events (see {@link SynclineClient#on}): `open`, `close` ({code, reason}), `error` (Error), `reconnect`
 * ({attempt, delayMs}, before each wait), `subscriptionError` ({subscription, error}: a re-subscribe was refused).
 * Everything runs on the caller's event loop; callbacks are called from socket events, never re-entrantly.
 */
export class SynclineClient {
    /**
     * @param {string} url the route's websocket URL, e.g. `ws://127.0.0.1:8000/ws/posts/`
     * @param {object} [options]
     * @param {Function} [options.WebSocket] the WebSocket class (default `globalThis.WebSocket`; on Node pass `ws`)
     * @param {string} [options.stream] the stream name on a multiplexer route: frames go as `{stream, payload}`
     * @param {{initialMs?: number, maxMs?: number, stableMs?: number}} [options.backoff] reconnect delays: the first
     *   wait is about `initialMs` (default 100), each failed attempt doubles it up to `maxMs` (default 5000), with
     *   jitter (a random 50-100% of it); a connection that stayed open `stableMs` (default 5000) resets it
     * @param {number} [options.requestTimeoutMs] how long a request may wait for its reply, the time spent waiting
     *   for a connection included (default 10000)
     * @param {string} [options.pkField] the key of a row's primary key in list rows (default "id"; delete pushes
     *   carry `{"pk": ...}`, which is always understood)
     */
    constructor(url, options = {}) {
        this.url = url;
        this.stream = options.stream;
        this.WebSocketClass = options.WebSocket ?? globalThis.WebSocket;
        if (typeof this.WebSocketClass !== "function") {
            throw new TypeError("SynclineClient: no WebSocket class (pass options.WebSocket, e.g. the ws package)");
        }
        const backoff = options.backoff ?? {};
        this.initialMs = backoff.initialMs ?? 100;
        this.maxMs = backoff.maxMs ?? 5000;
        this.stableMs = backoff.stableMs ?? 5000;
        this.requestTimeoutMs = options.requestTimeoutMs ?? 10000;
        this.pkField = options.pkField ?? "id";

        this.socket_ = null;
        this.closed_ = false;
        this.attempt_ = 0;
        this.reconnectTimer_ = null;
        this.stableTimer_ = null;
        this.nextRequestId_ = 1;
        this.nextSubscriptionId_ = 1;
        /** @type {Map<number, object>} request_id → pending request, in the order they were made */
        this.pending_ = new Map();
        /** @type {Map<string, Subscription>} request_id → subscription */
        this.subscriptions_ = new Map();
        this.listeners_ = new Map();
        this.Connect_();
    }

    /** True while the socket is open. */
    get connected() {
        return this.socket_ !== null && this.socket_.readyState === kOpen;
    }

    /**
     * Adds an event listener; returns a function that removes it.
     * @param {"open"|"close"|"error"|"reconnect"|"subscriptionError"} type
     * @param {Function} listener
     * @returns {() => void}
     */
    on(type, listener) {
        if (!this.listeners_.has(type)) this.listeners_.set(type, new Set());
        this.listeners_.get(type).add(listener);
        return () => this.listeners_.get(type)?.delete(listener);
    }

    /**
     * Sends `{action, request_id, ...args}` and resolves with the reply frame (its payload on a multiplexer) when
     * `response_status` is 2xx; rejects with a {@link SynclineError} carrying `status` and `errors` otherwise.
     * A request made while disconnected waits for the next connection. It rejects (status 0) when no reply came
     * within `requestTimeoutMs`, when the socket closed after it was sent (it may or may not have run: retry only
     * what is safe to repeat), or on {@link SynclineClient#close}. request_ids are integers unique per client.
     * @param {string} action
     * @param {object} [args] the other top-level keys (`pk`, `data`, `filter`, ...)
     * @returns {Promise<object>}
     */
    request(action, args = {}) {
        if (this.closed_) return Promise.reject(new SynclineError("client is closed", 0));
        const id = this.nextRequestId_++;
        const frame = {...args, action, request_id: id};
        let text;
        try {
            text = this.Encode_(frame);  // a value JSON cannot hold rejects here, not later on a reconnect
        } catch (error) {
            return Promise.reject(error);
        }
        return new Promise((resolve, reject) => {
            const entry = {frame, text, resolve, reject, sent: false, timer: null};
            entry.timer = setTimeout(() => {
                this.pending_.delete(id);
                reject(new SynclineError(`request ${action} timed out after ${this.requestTimeoutMs} ms`, 0));
            }, this.requestTimeoutMs);
            this.pending_.set(id, entry);
            if (this.connected) this.SendPending_(entry);
        });
    }

    /**
     * Subscribes to one row (`subscribe_instance`). `onChange({action, data, version, epoch})` is called for every
     * change after the subscription: `action` "update" (data: the row) or "delete" (data: `{pk}`). After a
     * reconnect, the client re-subscribes with `since` (the last version seen) and `epoch`, and the server pushes
     * the row's current state when it changed meanwhile. Pushes not newer than the last version seen are dropped.
     * The current state at subscription time is not pushed: read it with `request("retrieve", {pk})` if needed.
     * @param {number|string} pk the lookup value
     * @param {(change: {action: string, data: any, version: number|undefined, epoch: string|undefined}) => void}
     *   onChange
     * @param {object} [options]
     * @param {string} [options.lookup] the request key carrying the lookup value (default "pk")
     * @param {number} [options.since] a version seen earlier (e.g. stored across page loads) to catch up from
     * @param {string} [options.epoch] the epoch that `since` belongs to
     * @returns {Subscription} with `ready` (a Promise of the first 201) and `unsubscribe()`
     */
    subscribeInstance(pk, onChange, options = {}) {
        const lookup = options.lookup ?? "pk";
        return this.AddSubscription_(
            new InstanceSubscription(this, `sub-${this.nextSubscriptionId_++}`, lookup, pk, onChange, options));
    }

    /**
     * Subscribes to a filtered list (`subscribe_list`). `onChange({action, data, version, epoch})` is called with
     * "create", "update" or "delete" as rows enter, change within and leave the filter; with `snapshot: true`,
     * first with `{action: "snapshot", data: rows, version}` from the 201. `handle.rows` is a Map pk → row kept up
     * to date. Each row's last version is kept: an older or repeated push of a row is dropped. After a reconnect it
     * re-subscribes with `since` (the version of its last 201) and `epoch`; when the server cannot take `since`
     * (an error reply), it subscribes afresh with a snapshot.
     * @param {object} filter the filter, as for `list` (e.g. `{author: "alice"}`)
     * @param {(change: object) => void} onChange
     * @param {{snapshot?: boolean}} [options]
     * @returns {Subscription}
     */
    subscribeList(filter, onChange, options = {}) {
        return this.AddSubscription_(
            new ListSubscription(this, `list-${this.nextSubscriptionId_++}`, filter, onChange, options));
    }

    /** Closes the socket and stops reconnecting; pending requests reject (status 0). */
    close() {
        if (this.closed_) return;
        this.closed_ = true;
        clearTimeout(this.reconnectTimer_);
        clearTimeout(this.stableTimer_);
        this.FailPending_(() => true, "client is closed");
        for (const subscription of this.subscriptions_.values())
            subscription.Fail_(new SynclineError("client is closed", 0));
        this.subscriptions_.clear();
        if (this.socket_ !== null) {
            try {
                this.socket_.close(1000);
            } catch {
                // Already closing: nothing to do.
            }
        }
    }

    // --- internals ---

    Emit_(type, value) {
        for (const listener of this.listeners_.get(type) ?? []) {
            try {
                listener(value);
            } catch (error) {
                // A listener's bug must not break the connection; report it where it can be seen.
                setTimeout(() => {
                    throw error;
                });
            }
        }
    }

    AddSubscription_(subscription) {
        if (this.closed_) {
            subscription.Fail_(new SynclineError("client is closed", 0));
            return subscription;
        }
        this.subscriptions_.set(subscription.id, subscription);
        if (this.connected) subscription.Subscribe_();
        return subscription;
    }

    Connect_() {
        if (this.closed_) return;
        let socket;
        try {
            socket = new this.WebSocketClass(this.url);
        } catch (error) {
            this.Emit_("error", error);
            this.ScheduleReconnect_();
            return;
        }
        this.socket_ = socket;
        socket.onopen = () => {
            if (socket !== this.socket_) return;
            this.stableTimer_ = setTimeout(() => {
                this.attempt_ = 0;
            }, this.stableMs);
            this.Emit_("open");
            // Subscriptions first, so that a write queued while offline is covered by them.
            for (const subscription of this.subscriptions_.values()) subscription.Subscribe_();
            for (const entry of this.pending_.values()) {
                if (!entry.sent) this.SendPending_(entry);
            }
        };
        socket.onmessage = (event) => {
            if (socket === this.socket_) this.OnMessage_(event.data);
        };
        socket.onerror = (event) => {
            if (socket !== this.socket_ || this.closed_) return;
            this.Emit_("error", event?.error ?? new Error(event?.message ?? "websocket error"));
        };
        socket.onclose = (event) => {
            if (socket !== this.socket_) return;
            this.socket_ = null;
            clearTimeout(this.stableTimer_);
            this.FailPending_((entry) => entry.sent, "connection closed before the reply");
            this.Emit_("close", {code: event?.code, reason: event?.reason});
            this.ScheduleReconnect_();
        };
    }

    ScheduleReconnect_() {
        if (this.closed_) return;
        const ceiling = Math.min(this.maxMs, this.initialMs * 2 ** this.attempt_);
        const delayMs = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
        this.attempt_ = Math.min(this.attempt_ + 1, 30);
        this.Emit_("reconnect", {attempt: this.attempt_, delayMs});
        this.reconnectTimer_ = setTimeout(() => this.Connect_(), delayMs);
    }

    FailPending_(predicate, message) {
        for (const [id, entry] of this.pending_) {
            if (!predicate(entry)) continue;
            clearTimeout(entry.timer);
            this.pending_.delete(id);
            entry.reject(new SynclineError(`request ${entry.frame.action}: ${message}`, 0));
        }
    }

    SendPending_(entry) {
        entry.sent = true;
        this.socket_.send(entry.text);
    }

    /** A request frame as sent: JSON text, wrapped as `{stream, payload}` on a multiplexer. */
    Encode_(frame) {
        return JSON.stringify(this.stream === undefined ? frame : {stream: this.stream, payload: frame});
    }

    /** Sends one frame; returns false when the socket is not open. */
    SendFrame_(frame) {
        if (!this.connected) return false;
        this.socket_.send(this.Encode_(frame));
        return true;
    }

    OnMessage_(data) {
        let frame;
        try {
            frame = JSON.parse(typeof data === "string" ? data : String(data));
        } catch (error) {
            this.Emit_("error", new Error(`unparsable frame from the server: ${error.message}`));
            return;
        }
        if (this.stream !== undefined) {
            if (frame === null || frame.stream !== this.stream) return;
            frame = frame.payload;
        }
        if (frame === null || typeof frame !== "object") return;
        const id = frame.request_id;
        const entry = this.pending_.get(id);
        if (entry !== undefined) {
            clearTimeout(entry.timer);
            this.pending_.delete(id);
            const status = frame.response_status;
            if (typeof status === "number" && status >= 200 && status < 300) {
                entry.resolve(frame);
            } else {
                const errors = Array.isArray(frame.errors) ? frame.errors : [];
                entry.reject(new SynclineError(
                    `request ${entry.frame.action} answered ${status}: ${JSON.stringify(errors)}`, status, errors,
                    frame));
            }
            return;
        }
        const subscription = this.subscriptions_.get(id);
        if (subscription !== undefined) subscription.OnFrame_(frame);
        // Anything else (a reply after its timeout, a push of a dropped subscription) is ignored.
    }
}

/** A subscription handle: `ready` resolves with the first 201 reply; `unsubscribe()` ends it. */
class Subscription {
    constructor(client, id, onChange, subscribeAction) {
        this.client_ = client;
        this.id = id;
        this.onChange_ = onChange;
        this.subscribeAction_ = subscribeAction;
        /** The epoch of the versions kept (from replies and pushes), or undefined before the server named one. */
        this.epoch = undefined;
        /** How many pushes were dropped because they were not newer than the version already seen. */
        this.dropped = 0;
        this.active_ = true;
        this.sent_ = null;  // what the last subscribe frame asked for: {since, epoch}
        this.ready = new Promise((resolve, reject) => {
            this.resolveReady_ = resolve;
            this.rejectReady_ = reject;
        });
        this.ready.catch(() => {});  // the caller may ignore `ready`
        this.readySettled_ = false;
    }

    /** Stops the subscription: no more callbacks; tells the server when connected. */
    unsubscribe() {
        if (!this.active_) return;
        this.active_ = false;
        this.client_.subscriptions_.delete(this.id);
        this.client_.SendFrame_(this.UnsubscribeFrame_());
        this.Fail_(new SynclineError("unsubscribed", 0));
    }

    Fail_(error) {
        this.active_ = false;
        if (!this.readySettled_) {
            this.readySettled_ = true;
            this.rejectReady_(error);
        }
    }

    OnFrame_(frame) {
        if (!this.active_) return;
        if (frame.action === this.subscribeAction_) {
            this.OnReply_(frame);
        } else if (kPushActions.has(frame.action)) {
            this.OnPush_(frame);
        }
    }

    OnReply_(frame) {
        const status = frame.response_status;
        if (typeof status === "number" && status >= 200 && status < 300) {
            this.OnSubscribed_(frame);
            if (!this.readySettled_) {
                this.readySettled_ = true;
                this.resolveReady_(frame);
            }
            return;
        }
        const errors = Array.isArray(frame.errors) ? frame.errors : [];
        const error = new SynclineError(
            `${this.subscribeAction_} answered ${status}: ${JSON.stringify(errors)}`, status, errors, frame);
        if (!this.OnRefused_(error)) {
            // The first subscribe fails the handle; a refused re-subscribe (e.g. the row is gone, or permissions
            // changed) is reported, and tried again on the next connection.
            if (!this.readySettled_) {
                this.client_.subscriptions_.delete(this.id);
                this.Fail_(error);
            } else {
                this.client_.Emit_("subscriptionError", {subscription: this, error});
            }
        }
    }

    /**
     * The epoch rule shared by replies and pushes: a frame naming another epoch than the one kept means the
     * database was recreated, so every version kept is void. Returns true when it reset.
     */
    AdoptEpoch_(epoch) {
        if (typeof epoch !== "string") return false;
        const changed = this.epoch !== undefined && epoch !== this.epoch;
        this.epoch = epoch;
        if (changed) this.ResetVersions_();
        return changed;
    }

    Deliver_(change) {
        try {
            this.onChange_(change);
        } catch (error) {
            setTimeout(() => {
                throw error;
            });
        }
    }
}

class InstanceSubscription extends Subscription {
    constructor(client, id, lookup, pk, onChange, options) {
        super(client, id, onChange, "subscribe_instance");
        this.lookup_ = lookup;
        this.pk = pk;
        /** The last version seen of the row (from the 201 or a push), undefined when none is known. */
        this.version = isVersion(options.since) ? options.since : undefined;
        if (typeof options.epoch === "string") this.epoch = options.epoch;
    }

    Subscribe_() {
        const frame = {action: "subscribe_instance", request_id: this.id, [this.lookup_]: this.pk};
        if (this.version !== undefined) {
            frame.since = this.version;
        } else if (this.readySettled_) {
            // Subscribed before, but no version known (a server whose 201 carries none, and no push yet): since 0
            // asks for the current state if the row changed at all, so a change made while away is not missed.
            frame.since = 0;
        }
        if (this.epoch !== undefined) frame.epoch = this.epoch;
        this.sent_ = {since: frame.since, epoch: frame.epoch};
        this.client_.SendFrame_(frame);
    }

    UnsubscribeFrame_() {
        return {action: "unsubscribe_instance", request_id: this.id, [this.lookup_]: this.pk};
    }

    ResetVersions_() {
        this.version = undefined;
    }

    OnSubscribed_(frame) {
        if (this.AdoptEpoch_(frame.epoch)) return;  // another epoch: the server pushes the current state next
        // With `since` the server pushes the current state (at the 201's version) right after the 201 when the row
        // changed after `since`: keep `since` so that push is taken. Without, the 201's version is the floor.
        if (this.sent_?.since === undefined && isVersion(frame.version)) this.version = frame.version;
    }

    OnRefused_() {
        return false;
    }

    OnPush_(frame) {
        this.AdoptEpoch_(frame.epoch);
        const version = frame.version;
        if (isVersion(version)) {
            if (this.version !== undefined && version <= this.version) {
                this.dropped++;
                return;
            }
            this.version = version;
        }
        this.Deliver_({action: frame.action, data: frame.data, version, epoch: this.epoch});
    }
}

class ListSubscription extends Subscription {
    constructor(client, id, filter, onChange, options) {
        super(client, id, onChange, "subscribe_list");
        this.filter = filter;
        this.snapshot_ = options.snapshot === true;
        /**
         * The version of the last 201 (the snapshot's, or a re-subscribe's): the `since` of the next re-subscribe.
         * Not advanced by pushes: pushes of different rows may arrive out of version order (e.g. over Redis
         * shards), so a push's version does not prove that every older change was delivered; the per-row versions
         * drop what a re-subscribe pushes again.
         */
        this.version = undefined;
        /** @type {Map<any, number>} pk → the last version seen of that row */
        this.versions_ = new Map();
        /** @type {Map<any, object>} pk → the row as last seen */
        this.rows = new Map();
        this.sinceRefused_ = false;
    }

    Subscribe_() {
        const frame = {action: "subscribe_list", request_id: this.id, filter: this.filter};
        const since = this.sinceRefused_ ? undefined : this.version;
        if (since !== undefined) {
            frame.since = since;
            if (this.epoch !== undefined) frame.epoch = this.epoch;
        } else if (this.snapshot_) {
            frame.snapshot = true;
        }
        this.sent_ = {since: frame.since, epoch: frame.epoch};
        this.client_.SendFrame_(frame);
    }

    UnsubscribeFrame_() {
        return {action: "unsubscribe_list", request_id: this.id};
    }

    ResetVersions_() {
        this.version = undefined;
        this.versions_.clear();
    }

    PkOf_(data) {
        if (data === null || typeof data !== "object") return undefined;
        return data[this.client_.pkField] ?? data.pk;
    }

    OnSubscribed_(frame) {
        this.AdoptEpoch_(frame.epoch);
        if (isVersion(frame.version)) this.version = Math.max(this.version ?? frame.version, frame.version);
        if (!Array.isArray(frame.data)) return;
        // A snapshot: the rows with their versions, and the snapshot's version as the list's floor. It replaces the
        // rows kept (a row missing from it has left the list), except a row already seen at a newer version.
        const versions = Array.isArray(frame.versions) ? frame.versions : [];
        const rows = new Map();
        frame.data.forEach((row, i) => {
            const pk = this.PkOf_(row);
            if (pk === undefined) return;
            const version = versions[i];
            const seen = this.versions_.get(pk);
            if (seen !== undefined && isVersion(version) && version < seen && this.rows.has(pk)) {
                rows.set(pk, this.rows.get(pk));
                return;
            }
            if (isVersion(version)) this.versions_.set(pk, version);
            rows.set(pk, row);
        });
        this.rows = rows;
        this.Deliver_({action: "snapshot", data: [...rows.values()], version: frame.version, epoch: this.epoch});
    }

    OnRefused_(error) {
        // A server without `since` for lists (or one that refuses it): subscribe afresh with a snapshot.
        if (this.sent_?.since === undefined || this.sinceRefused_) return false;
        this.sinceRefused_ = true;
        this.client_.Emit_("subscriptionError", {subscription: this, error});
        this.Subscribe_();
        return true;
    }

    OnPush_(frame) {
        this.AdoptEpoch_(frame.epoch);
        const pk = this.PkOf_(frame.data);
        const version = frame.version;
        if (isVersion(version) && pk !== undefined) {
            const seen = this.versions_.get(pk);
            if (seen !== undefined && version <= seen) {
                this.dropped++;
                return;
            }
            this.versions_.set(pk, version);
        }
        if (pk !== undefined) {
            if (frame.action === "delete")
                this.rows.delete(pk);
            else
                this.rows.set(pk, frame.data);
        }
        this.Deliver_({action: frame.action, data: frame.data, version, epoch: this.epoch});
    }
}
