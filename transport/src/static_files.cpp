// Static files on the websocket port (WebSocketOptions::static_mounts): the demo page and its script. The request path
// is untrusted, so it is checked twice: first as text (no dot segments, empty segments, backslashes, control bytes or
// encoded separators: a path that needs any of these is refused before the file system sees it), then on disk (the
// real path of what it names, symlinks resolved, must lie inside the mount's folder, itself resolved at Start).
// A file is read whole on the network thread that answers, so its size is bounded (static_max_file_bytes).
// The checks guard against the request, not against whoever can write in the folder: a symlink swapped in between the
// check and the read is theirs to make, and they could as well copy the file in.

#include "websocket_server_impl.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace syncline::transport {
namespace {

namespace fs = std::filesystem;

// Paths of plain HTTP answers of their own: never looked up as files, whatever a mount covers.
bool IsReservedHttpPath(std::string_view path) { return path == "/healthz" || path == "/readyz" || path == "/metrics"; }

// "/" stays "/"; "/js/" and "/js" become "/js".
std::string NormalizePrefix(std::string prefix) {
    while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
    return prefix;
}

int HexValue(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Percent-decodes `text`; false (refuse) on a malformed escape, on any escape of '/', '\\' or a control byte, and on a
// raw backslash or control byte. What remains can only name a path through plain '/' separators.
bool DecodePath(std::string_view text, std::string& out) {
    out.clear();
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '%') {
            if (i + 2 >= text.size()) return false;
            const int high = HexValue(text[i + 1]);
            const int low = HexValue(text[i + 2]);
            if (high < 0 || low < 0) return false;
            c = static_cast<char>(high * 16 + low);
            i += 2;
            if (c == '/') return false;
        }
        const auto byte = static_cast<unsigned char>(c);
        if (c == '\\' || byte < 0x20 || byte == 0x7f) return false;
        out.push_back(c);
    }
    return true;
}

std::string_view ContentTypeOf(const fs::path& file) {
    std::string ext = file.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (ext == ".html" || ext == ".htm") return "text/html; charset=utf-8";
    if (ext == ".js" || ext == ".mjs") return "text/javascript; charset=utf-8";
    if (ext == ".css") return "text/css; charset=utf-8";
    if (ext == ".json") return "application/json";
    if (ext == ".svg") return "image/svg+xml";
    if (ext == ".png") return "image/png";
    if (ext == ".ico") return "image/x-icon";
    if (ext == ".txt") return "text/plain; charset=utf-8";
    return "application/octet-stream";
}

// True when `inner` is `root` or lies below it (both canonical).
bool IsInside(const fs::path& inner, const fs::path& root) {
    auto root_it = root.begin();
    auto inner_it = inner.begin();
    for (; root_it != root.end(); ++root_it, ++inner_it) {
        if (inner_it == inner.end() || *inner_it != *root_it) return false;
    }
    return true;
}

void Answer(WsConnection& connection, websocketpp::http::status_code::value status, const char* detail) {
    connection.set_status(status);
    connection.append_header("Content-Type", "application/json");
    connection.set_body(std::string(R"({"detail":")") + detail + "\"}");
}

// A directory named without its final "/": the page's relative links (./app.mjs) resolve against the URL, so the
// browser is sent to the one with "/". `location` is the request's own path, which has no CR or LF (the request line
// could not hold them).
void Redirect(WsConnection& connection, const std::string& location) {
    connection.set_status(websocketpp::http::status_code::moved_permanently);
    connection.append_header("Location", location);
    connection.set_body("");
    connection.replace_header("Content-Length", "0");
}

}  // namespace

void WebSocketServer::Impl::PrepareStaticMounts() {
    for (const StaticMount& mount : options_.static_mounts) {
        if (mount.prefix.empty() || mount.prefix[0] != '/') {
            throw std::invalid_argument("static files: the prefix \"" + mount.prefix + "\" must start with /");
        }
        std::error_code ec;
        fs::path root = fs::canonical(mount.folder, ec);
        if (ec || !fs::is_directory(root, ec)) {
            throw std::runtime_error("static files: " + mount.folder + " (for " + mount.prefix + ") is not a folder");
        }
        static_mounts_.push_back(PreparedStaticMount{NormalizePrefix(mount.prefix), std::move(root)});
    }
    // Longest prefix first, so that "/js" wins over "/" for /js/app.mjs.
    std::stable_sort(static_mounts_.begin(), static_mounts_.end(),
                     [](const auto& a, const auto& b) { return a.prefix.size() > b.prefix.size(); });
}

bool WebSocketServer::Impl::ServeStatic(WsConnection& connection, std::string_view path) {
    if (static_mounts_.empty() || IsReservedHttpPath(path) || routes_.count(std::string(path)) != 0) return false;
    const PreparedStaticMount* mount = nullptr;
    std::string_view rest;
    for (const auto& candidate : static_mounts_) {
        if (candidate.prefix == "/") {
            if (!path.empty() && path[0] == '/') {
                mount = &candidate;
                rest = path.substr(1);
                break;
            }
        } else if (path.compare(0, candidate.prefix.size(), candidate.prefix) == 0 &&
                   (path.size() == candidate.prefix.size() || path[candidate.prefix.size()] == '/')) {
            mount = &candidate;
            rest = path.substr(std::min(path.size(), candidate.prefix.size() + 1));
            break;
        }
    }
    if (!mount) return false;

    const std::string method = connection.get_request().get_method();
    if (method != "GET" && method != "HEAD") {
        connection.append_header("Allow", "GET, HEAD");
        Answer(connection, websocketpp::http::status_code::method_not_allowed, "Method not allowed.");
        return true;
    }
    if (mount->prefix != "/" && path.size() == mount->prefix.size()) {
        Redirect(connection, std::string(path) + "/");  // "/js" names the folder itself
        return true;
    }
    std::string relative;
    if (!DecodePath(rest, relative)) {
        Answer(connection, websocketpp::http::status_code::bad_request, "Bad path.");
        return true;
    }
    // Segments: none may be "." or ".." or empty (an empty one would make the rest absolute: "//etc/passwd"), except
    // a last one ("dir/" asks for dir/index.html). A hidden name (".env", ".git") is not served.
    const bool wants_directory = relative.empty() || relative.back() == '/';
    bool hidden = false;
    for (std::size_t start = 0; start < relative.size();) {
        std::size_t end = relative.find('/', start);
        if (end == std::string::npos) end = relative.size();
        const std::string_view segment = std::string_view(relative).substr(start, end - start);
        if (segment.empty() || segment == "." || segment == "..") {
            Answer(connection, websocketpp::http::status_code::bad_request, "Bad path.");
            return true;
        }
        if (segment[0] == '.') hidden = true;
        start = end + 1;
    }
    if (hidden) {
        Answer(connection, websocketpp::http::status_code::not_found, "Not found.");
        return true;
    }

    std::error_code ec;
    fs::path file = fs::canonical(mount->root / relative, ec);
    if (ec) {
        Answer(connection, websocketpp::http::status_code::not_found, "Not found.");
        return true;
    }
    if (!IsInside(file, mount->root)) {
        Answer(connection, websocketpp::http::status_code::forbidden, "Forbidden.");
        return true;
    }
    if (fs::is_directory(file, ec)) {
        if (!wants_directory) {
            Redirect(connection, std::string(path) + "/");
            return true;
        }
        file = fs::canonical(file / "index.html", ec);
        if (ec || !IsInside(file, mount->root)) {
            Answer(connection, websocketpp::http::status_code::not_found, "Not found.");
            return true;
        }
    }
    if (!fs::is_regular_file(file, ec)) {
        Answer(connection, websocketpp::http::status_code::not_found, "Not found.");
        return true;
    }
    const std::uintmax_t size = fs::file_size(file, ec);
    if (ec || size > options_.static_max_file_bytes) {
        Answer(connection, websocketpp::http::status_code::forbidden, "File too large.");
        return true;
    }
    std::string body;
    if (method == "GET") {
        std::ifstream in(file, std::ios::binary);
        body.resize(static_cast<std::size_t>(size));
        if (!in || !in.read(body.data(), static_cast<std::streamsize>(body.size()))) {
            spdlog::warn("static files: cannot read {}", file.string());
            Answer(connection, websocketpp::http::status_code::internal_server_error, "Cannot read the file.");
            return true;
        }
    }
    connection.set_status(websocketpp::http::status_code::ok);
    connection.append_header("Content-Type", std::string(ContentTypeOf(file)));
    connection.append_header("X-Content-Type-Options", "nosniff");
    // The page is edited in place while the server runs: browsers revalidate rather than keep a stale copy.
    connection.append_header("Cache-Control", "no-cache");
    connection.set_body(body);
    // set_body drops Content-Length for an empty body; HEAD announces the GET's length.
    connection.replace_header("Content-Length", std::to_string(size));
    return true;
}

}  // namespace syncline::transport
