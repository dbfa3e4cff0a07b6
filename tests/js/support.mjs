// Helpers shared by the JavaScript tests (not a test itself: CMake registers only *.test.mjs).
import {execFileSync, spawn} from "node:child_process";
import {once} from "node:events";
import fs from "node:fs";
import {createRequire} from "node:module";
import net from "node:net";
import os from "node:os";
import path from "node:path";

/** Exits 77 (ctest's skip) when the npm packages are not installed; otherwise returns `require` for them. */
export function requireNodeModules() {
    const dir = process.env.SYNCLINE_NODE_MODULES;
    if (!dir) {
        console.log("skip: SYNCLINE_NODE_MODULES is not set (scripts/node-deps.sh installs the npm packages)");
        process.exit(77);
    }
    return createRequire(dir + "/");
}

/** Prints one progress line, with the seconds since the start. */
const started = Date.now();
export function progress(message) {
    console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${message}`);
}

/**
 * Condition waiting without sleeps: `notify()` is called wherever state changes (a frame arrives, a change is
 * delivered); `until(check, what, ms)` resolves as soon as `check()` holds after a notify, or rejects naming `what`
 * after `ms`.
 */
export class Condition {
    constructor() {
        this.waiters_ = new Set();
    }

    notify() {
        for (const waiter of [...this.waiters_]) waiter();
    }

    until(check, what, ms) {
        return new Promise((resolve, reject) => {
            const done = () => {
                let ok;
                try {
                    ok = check();
                } catch (error) {
                    this.waiters_.delete(done);
                    clearTimeout(timer);
                    reject(error);
                    return;
                }
                if (!ok) return;
                this.waiters_.delete(done);
                clearTimeout(timer);
                resolve();
            };
            const timer = setTimeout(() => {
                this.waiters_.delete(done);
                reject(new Error(`timed out after ${ms} ms waiting for ${typeof what === "function" ? what() : what}`));
            }, ms);
            this.waiters_.add(done);
            done();
        });
    }
}

/** Rejects with `what` when `promise` has not settled within `ms`. */
export function within(promise, ms, what) {
    let timer;
    const deadline = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    });
    return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** A free TCP port on 127.0.0.1 (closed again, so a server started right after can take it). */
export async function freePort() {
    const server = net.createServer();
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const {port} = server.address();
    server.close();
    await once(server, "close");
    return port;
}

/** A fresh temporary folder, removed by `removeTempDir`. */
export function makeTempDir(prefix) {
    return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * A `syncline serve --config FILE` child process. `start()` resolves once /healthz answers 200; `kill()` sends
 * SIGKILL and resolves when it exited. Every instance is killed when the test process exits, whatever the path.
 */
export class ServeProcess {
    static all = new Set();

    constructor(configFile, port, logFile) {
        const binDir = process.env.SYNCLINE_BIN_DIR;
        this.bin = binDir ? path.join(binDir, "syncline") : "";
        this.configFile = configFile;
        this.port = port;
        this.logFile = logFile;
        this.child = null;
    }

    available() {
        return this.bin !== "" && fs.existsSync(this.bin);
    }

    async start(timeoutMs = 15000) {
        const log = fs.openSync(this.logFile, "a");
        this.child = spawn(
            this.bin, ["serve", "--config", this.configFile, "--port", String(this.port)],
            {stdio: ["ignore", log, log]});
        fs.closeSync(log);
        ServeProcess.all.add(this);
        const child = this.child;
        const exited = once(child, "exit").then(([code, signal]) => {
            throw new Error(
                `syncline serve exited (code ${code}, signal ${signal}) before it was healthy; ` +
                `log: ${this.logFile}`);
        });
        exited.catch(() => {});
        const deadline = Date.now() + timeoutMs;
        for (;;) {
            if (await Promise.race([this.healthy_(), exited])) return;
            if (Date.now() > deadline) throw new Error(`syncline serve not healthy after ${timeoutMs} ms`);
            // A refused connection answers at once: wait for the next try on a short timer (not a synchronisation
            // sleep: the loop ends on the event, the answer of /healthz, or at the deadline).
            await new Promise((resolve) => setTimeout(resolve, 20));
        }
    }

    async healthy_() {
        try {
            const response = await fetch(`http://127.0.0.1:${this.port}/healthz`, {signal: AbortSignal.timeout(500)});
            return response.status === 200;
        } catch {
            return false;
        }
    }

    async kill() {
        const child = this.child;
        if (child === null) return;
        this.child = null;
        ServeProcess.all.delete(this);
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = once(child, "exit");
        child.kill("SIGKILL");
        await exited;
    }

    static killAll() {
        for (const server of ServeProcess.all) {
            if (server.child !== null && server.child.exitCode === null) server.child.kill("SIGKILL");
        }
        ServeProcess.all.clear();
    }
}

/** Thrown by a test to report a skip (exit code 77, ctest's SKIP_RETURN_CODE) after the usual clean-up. */
/**
 * The database a test serves, chosen by SYNCLINE_JS_ENGINE: "sqlite" (the default) is the file `file` in `dir`;
 * "postgres" is a fresh database on the PostgreSQL of SYNCLINE_TEST_PG_URL (scripts/test.sh starts one), created
 * with SYNCLINE_TEST_PG_BIN's psql. Returns {engine, database (the config's "database" text), drop()}; drop() removes
 * the PostgreSQL database (also with servers still connected) and may be called more than once. Exits 77 (ctest's
 * skip) when PostgreSQL is asked for and not available.
 */
export function testDatabase(dir, file) {
    const engine = process.env.SYNCLINE_JS_ENGINE || "sqlite";
    if (engine === "sqlite") return {engine, database: path.join(dir, file), drop() {}};
    const admin = process.env.SYNCLINE_TEST_PG_URL;
    const bin = process.env.SYNCLINE_TEST_PG_BIN;
    if (!admin || !bin) {
        console.log("skip: SYNCLINE_TEST_PG_URL and SYNCLINE_TEST_PG_BIN must be set (scripts/test.sh sets both)");
        process.exit(77);
    }
    const psql = (sql) => execFileSync(path.join(bin, "psql"), ["-X", "-q", "-v", "ON_ERROR_STOP=1", admin, "-c", sql],
                                       {stdio: ["ignore", "ignore", "pipe"]});
    const name = `syncline_js_${process.pid}_${Date.now()}`;  // made here, never from outside
    psql(`CREATE DATABASE ${name}`);
    const url = new URL(admin);
    url.pathname = "/" + name;
    let dropped = false;
    return {
        engine,
        database: url.toString(),
        drop() {
            if (dropped) return;
            dropped = true;
            try {
                psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
            } catch (error) {
                console.log(`could not drop ${name}: ${error.message}`);
            }
        },
    };
}

export class Skip extends Error {}

/**
 * Runs `main` with a hard time limit; kills every server on every exit path; exits 0 on success, 77 when `main`
 * throws a {@link Skip}, and 1 with the reason otherwise. `cleanup(passed)` runs before the exit.
 */
export function runTest(name, limitMs, main, cleanup = () => {}) {
    process.on("exit", () => ServeProcess.killAll());
    for (const signal of ["SIGINT", "SIGTERM"]) {
        process.on(signal, () => {
            ServeProcess.killAll();
            process.exit(1);
        });
    }
    const fail = (error) => {
        if (error instanceof Skip) {
            console.log(`skip: ${error.message}`);
            ServeProcess.killAll();
            cleanup(true);
            process.exit(77);
        }
        console.error(`FAIL ${name}: ${error?.stack ?? error}`);
        ServeProcess.killAll();
        try {
            cleanup(false);
        } catch {
            // Leave the files for a look.
        }
        process.exit(1);
    };
    process.on("uncaughtException", fail);
    process.on("unhandledRejection", fail);
    const limit = setTimeout(() => fail(new Error(`the test took longer than ${limitMs} ms`)), limitMs);
    main().then(() => {
        clearTimeout(limit);
        ServeProcess.killAll();
        cleanup(true);
        console.log(`PASS ${name}`);
        process.exit(0);
    }, fail);
}
