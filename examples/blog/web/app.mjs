// The demo page: lists the posts of ws://<this host>/ws/posts/, creates and edits them, and keeps the list live with
// one list subscription (subscribe_list with a snapshot): every change pushed, whoever made it, redraws the table.
// The client is clients/js/syncline.mjs, served by the example config under /client/ (no copy, no build step).
import {SynclineClient} from "/client/syncline.mjs";

const $ = (selector) => document.querySelector(selector);
const form = $("#editor");
const status = $("#status");
let editing = null;  // the id of the post in the form, or null for a new one

const scheme = location.protocol === "https:" ? "wss" : "ws";
const client = new SynclineClient(`${scheme}://${location.host}/ws/posts/`);
client.on("open", () => setStatus("live", "live"));
client.on("close", () => setStatus("offline", "offline, reconnecting…"));

// All posts (an empty filter), with their current rows first: the handle keeps `rows` (id → row) up to date.
const posts = client.subscribeList({}, (change) => render(change), {snapshot: true});

function setStatus(name, text) {
    status.className = name;
    status.textContent = text;
}

function render(change) {
    const tbody = $("#posts");
    tbody.replaceChildren();
    const rows = [...posts.rows.values()].sort((a, b) => a.id - b.id);
    for (const post of rows) {
        const tr = document.createElement("tr");
        tr.dataset.id = post.id;
        // textContent, never innerHTML: titles are whatever anyone typed.
        for (const [name, value] of [["id", post.id], ["title", post.title], ["author", post.author],
                                     ["body", post.body]]) {
            const td = document.createElement("td");
            td.className = name;
            td.textContent = value;
            tr.append(td);
        }
        const actions = document.createElement("td");
        actions.append(button("Edit", () => startEditing(post)), " ",
                       button("Delete", () => send("delete", {pk: post.id})));
        tr.append(actions);
        if (change.action !== "snapshot" && change.data?.id === post.id) tr.classList.add("changed");
        tbody.append(tr);
    }
    $("#empty").hidden = rows.length > 0;
}

function button(text, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.addEventListener("click", onClick);
    return b;
}

function startEditing(post) {
    editing = post.id;
    $("#title").value = post.title;
    $("#author").value = post.author;
    $("#body").value = post.body;
    $("#save").textContent = `Save #${post.id}`;
    $("#cancel").hidden = false;
}

function stopEditing() {
    editing = null;
    form.reset();
    $("#save").textContent = "Create";
    $("#cancel").hidden = true;
}

// Sends a request; shows the server's errors (e.g. a title too long) under the form.
async function send(action, args) {
    $("#error").textContent = "";
    try {
        return await client.request(action, args);
    } catch (error) {
        $("#error").textContent = `${action}: ${JSON.stringify(error.errors ?? error.message)}`;
        return null;
    }
}

form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = {title: $("#title").value, author: $("#author").value, body: $("#body").value};
    // Nothing is drawn from the reply: the table changes when the push arrives, as in every other tab.
    const reply = editing === null ? await send("create", {data}) : await send("patch", {pk: editing, data});
    if (reply) stopEditing();
});
$("#cancel").addEventListener("click", stopEditing);
