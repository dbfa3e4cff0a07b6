// The demo page (examples/blog/web/) in a real browser: `syncline serve` on the example config (a scratch database,
// a free port), two pages in headless Chromium. A post created in page A appears in page B, an edit made in page B
// appears in page A, and a row changed with the `sqlite3` shell appears in both. Saves a screenshot of each page
// into the test's output folder (SYNCLINE_TEST_OUTPUT_DIR, the build folder; else the working directory).
//
// Chromium is driven over the DevTools protocol (CDP) with the `ws` package the other tests use: one browser
// websocket, one flattened session per page. Every wait is a promise that a MutationObserver inside the page resolves
// when the condition holds, bounded by a timeout on this side; the whole test by runTest's limit.
import {execFileSync, spawn} from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import {fileURLToPath} from "node:url";

import {freePort, makeTempDir, progress, requireNodeModules} from "./support.mjs";
import {runTest, ServeProcess, Skip, within} from "./support.mjs";

const require = requireNodeModules();
const WebSocket = require("ws");

const kChromium = process.env.SYNCLINE_CHROMIUM || "/usr/bin/chromium";
const kWaitMs = 20000;
const exampleDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../examples/blog");
const outputDir = process.env.SYNCLINE_TEST_OUTPUT_DIR || process.cwd();
const dir = makeTempDir("syncline-js-demo-");
let browserProcess = null;

// Starts Chromium headless with a DevTools port of its choosing; resolves the browser's websocket URL, which it prints
// on stderr.
function launchChromium() {
    const args = [
        "--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
        "--disable-extensions", "--disable-background-networking", "--remote-debugging-port=0",
        `--user-data-dir=${path.join(dir, "chromium-profile")}`, "--window-size=1000,760", "about:blank",
    ];
    // As root, Chromium refuses to start without this (its sandbox needs an unprivileged user).
    if (process.getuid?.() === 0) args.unshift("--no-sandbox");
    const log = fs.createWriteStream(path.join(dir, "chromium.log"));
    // Its own process group, so that killing it takes its renderer and helper processes along.
    browserProcess = spawn(kChromium, args, {stdio: ["ignore", "ignore", "pipe"], detached: true});
    process.on("exit", killChromium);
    return within(new Promise((resolve, reject) => {
        let seen = "";
        browserProcess.stderr.on("data", (chunk) => {
            log.write(chunk);
            seen += chunk.toString();
            const match = /DevTools listening on (ws:\/\/\S+)/.exec(seen);
            if (match) resolve(match[1]);
        });
        browserProcess.on("exit", (code) => reject(new Error(`chromium exited (${code}) before listening: ${seen}`)));
        browserProcess.on("error", reject);
    }), kWaitMs, "chromium's DevTools URL");
}

// The DevTools protocol over one websocket: send() resolves with a command's result (or rejects with its error).
class Cdp {
    static async connect(url) {
        const socket = new WebSocket(url, {perMessageDeflate: false});
        await within(new Promise((resolve, reject) => {
            socket.once("open", resolve);
            socket.once("error", reject);
        }), kWaitMs, "the DevTools websocket");
        return new Cdp(socket);
    }

    constructor(socket) {
        this.socket = socket;
        this.nextId = 1;
        this.pending = new Map();
        socket.on("message", (text) => {
            const message = JSON.parse(text);
            const request = this.pending.get(message.id);
            if (!request) return;  // an event: this test waits inside the pages instead
            this.pending.delete(message.id);
            if (message.error) request.reject(new Error(`${request.method}: ${JSON.stringify(message.error)}`));
            else request.resolve(message.result);
        });
    }

    send(method, params = {}, sessionId = undefined) {
        const id = this.nextId++;
        this.socket.send(JSON.stringify({id, method, params, sessionId}));
        return within(new Promise((resolve, reject) => this.pending.set(id, {method, resolve, reject})), kWaitMs,
                      method);
    }
}

// One browser tab.
class Page {
    static async open(cdp, name, url) {
        const {targetId} = await cdp.send("Target.createTarget", {url: "about:blank"});
        const {sessionId} = await cdp.send("Target.attachToTarget", {targetId, flatten: true});
        const page = new Page(cdp, name, sessionId);
        await page.send("Runtime.enable");
        await page.send("Page.enable");
        await page.send("Emulation.setDeviceMetricsOverride",
                        {width: 1000, height: 760, deviceScaleFactor: 1, mobile: false});
        await page.send("Page.navigate", {url});
        return page;
    }

    constructor(cdp, name, sessionId) {
        this.cdp = cdp;
        this.name = name;
        this.sessionId = sessionId;
    }

    send(method, params = {}) {
        return this.cdp.send(method, params, this.sessionId);
    }

    // Evaluates `expression` in the page (awaiting a promise) and returns its value.
    async evaluate(expression) {
        const {result, exceptionDetails} =
            await this.send("Runtime.evaluate", {expression, awaitPromise: true, returnByValue: true});
        if (exceptionDetails) {
            throw new Error(`${this.name}: ${exceptionDetails.exception?.description ?? exceptionDetails.text}`);
        }
        return result.value;
    }

    // Resolves when `condition` (a JavaScript expression) holds in the page: checked now and on every DOM change.
    async waitFor(condition, what) {
        progress(`${this.name}: waiting for ${what}`);
        // The page may still be loading (a navigation replaces the context): retry until the document is there.
        const expression = `new Promise((resolve) => {
            const check = () => { try { if (${condition}) { observer.disconnect(); resolve(true); } } catch {} };
            const observer = new MutationObserver(check);
            observer.observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
            check();
        })`;
        await within((async () => {
            for (;;) {
                try {
                    if (await this.evaluate(expression)) return;
                } catch (error) {
                    // "Execution context was destroyed": the navigation replaced the document; look again.
                    if (!/context|destroyed|navigat/i.test(String(error.message))) throw error;
                }
            }
        })(), kWaitMs, `${this.name}: ${what}`);
    }

    // Fills the editor and submits it (as a click on the form's button would).
    async submit(fields) {
        await this.evaluate(`(() => {
            const fields = ${JSON.stringify(fields)};
            for (const [id, value] of Object.entries(fields)) document.getElementById(id).value = value;
            document.getElementById("save").click();
        })()`);
    }

    async screenshot(file) {
        const {data} = await this.send("Page.captureScreenshot", {format: "png"});
        fs.writeFileSync(file, Buffer.from(data, "base64"));
        progress(`${this.name}: screenshot ${file}`);
    }
}

// The expression "a row of the table shows this title".
const rowWithTitle = (title) =>
    `[...document.querySelectorAll("#posts td.title")].some((td) => td.textContent === ${JSON.stringify(title)})`;

async function main() {
    if (!fs.existsSync(kChromium)) throw new Skip(`no ${kChromium} (Debian's chromium package)`);
    // The example config as it is, but on a scratch database and with its folders made absolute.
    const config = JSON.parse(fs.readFileSync(path.join(exampleDir, "config.json"), "utf8"));
    const database = path.join(dir, "blog.db");
    config.database = database;
    for (const prefix of Object.keys(config.static)) config.static[prefix] = path.resolve(exampleDir, config.static[prefix]);
    const configFile = path.join(dir, "config.json");
    fs.writeFileSync(configFile, JSON.stringify(config));

    const port = await freePort();
    const server = new ServeProcess(configFile, port, path.join(dir, "server.log"));
    if (!server.available()) throw new Skip("SYNCLINE_BIN_DIR has no syncline binary");
    await server.start();
    progress(`syncline serve on port ${port}`);

    const cdp = await Cdp.connect(await launchChromium());
    const url = `http://127.0.0.1:${port}/`;
    const a = await Page.open(cdp, "page A", url);
    const b = await Page.open(cdp, "page B", url);
    for (const page of [a, b]) {
        await page.waitFor(`document.getElementById("status")?.className === "live"`, "the socket to open");
    }

    await a.submit({title: "Hello from A", author: "ann", body: "typed in page A"});
    await b.waitFor(rowWithTitle("Hello from A"), "the post created in page A");

    await b.evaluate(`document.querySelector('#posts tr[data-id="1"] button').click()`);  // its Edit button
    await b.submit({title: "Edited in B"});
    await a.waitFor(rowWithTitle("Edited in B"), "the edit made in page B");

    execFileSync("sqlite3", [database, "UPDATE posts SET title = 'Changed by sqlite3' WHERE id = 1;"]);
    for (const page of [a, b]) await page.waitFor(rowWithTitle("Changed by sqlite3"), "the sqlite3 shell's change");

    fs.mkdirSync(outputDir, {recursive: true});
    await a.screenshot(path.join(outputDir, "demo_page_a.png"));
    await b.screenshot(path.join(outputDir, "demo_page_b.png"));
    await cdp.send("Browser.close").catch(() => {});
    await server.kill();
}

function killChromium() {
    if (browserProcess === null || browserProcess.pid === undefined) return;
    try {
        process.kill(-browserProcess.pid, "SIGKILL");
    } catch {
        // Already gone.
    }
}

function cleanup(passed) {
    killChromium();
    if (passed) fs.rmSync(dir, {recursive: true, force: true});
    else console.log(`left for a look: ${dir} (server.log, chromium.log)`);
}

runTest("demo_page", 120000, main, cleanup);
