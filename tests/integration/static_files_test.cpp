// Static files on the websocket port (issue 14, item 4): `"static": {"/": "web"}` serves the folder over plain HTTP,
// with a type by extension, index.html for a directory, 404 for what is missing; every way of naming a file outside
// the folder is refused (a secret next to the folder is never served); /healthz, /readyz and websocket routes keep
// their answers. Requests are written by hand on a raw socket: an HTTP client library would normalize the very paths
// under test.

#include <syncline/config/config.hpp>
#include <syncline/test_support/server_fixture.hpp>
#include <syncline/test_support/ws_client.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>

namespace syncline {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kSecret = "TOP-SECRET-do-not-serve";

constexpr const char* kModels = R"("models": {"posts": {"fields": {"id": {"type": "integer", "primary_key": true},
                                                       "title": {"type": "text"}}}},
  "routes": {"/ws/posts/": {"model": "posts", "mixins": ["create", "retrieve"]}})";

struct Answer {
    int status = 0;
    std::map<std::string, std::string> headers;  // names lower-cased
    std::string body;
    std::string raw;
};

void Write(const fs::path& file, const std::string& text) {
    fs::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary) << text;
}

class StaticFilesTest : public test_support::ServerTest {
protected:
    fs::path Dir() const { return fs::path(dir_.File("")); }

    void StartWithWeb(const std::string& mounts = R"({"/": "web"})") {
        const fs::path web = Dir() / "web";
        Write(web / "index.html", "<h1>home</h1>");
        Write(web / "app.mjs", "export const a = 1;");
        Write(web / "app.js", "var a = 1;");
        Write(web / "style.css", "body {}");
        Write(web / "data.json", "{}");
        Write(web / "pic.svg", "<svg/>");
        Write(web / "pic.png", "PNG");
        Write(web / "favicon.ico", "ICO");
        Write(web / "notes.txt", "notes");
        Write(web / "blob.bin", "bytes");
        Write(web / "empty.txt", "");
        Write(web / "sub" / "index.html", "<h1>sub</h1>");
        Write(web / "sub" / "page.html", "<h1>page</h1>");
        Write(web / ".env", kSecret);
        Write(web / "big.bin", std::string(2000, 'x'));
        // Files that would shadow the server's own answers if static files came first.
        Write(web / "healthz", "file healthz");
        Write(web / "ws" / "posts" / "index.html", "file route");
        // The secret next to the folder, and symlinks inside the folder that lead to it.
        Write(Dir() / "secret.txt", kSecret);
        Write(Dir() / "outside" / "index.html", kSecret);
        fs::create_symlink(Dir() / "secret.txt", web / "escape.txt");
        fs::create_symlink("../outside", web / "escape_dir");
        fs::create_symlink("index.html", web / "alias.html");  // inside: served
        StartFromConfig(std::string(R"({"database": "s.db", "listen": {"port": 0}, "workers": 1,
                                        "static_max_file_bytes": 1000, "static": )") +
                        mounts + ", " + kModels + "}");
    }

    // Sends `request_line` + headers as written and reads the answer to EOF (the server closes after plain HTTP).
    Answer Send(const std::string& method, const std::string& target) const {
        Answer answer;
        auto tcp = test_support::TcpConnection::Connect("127.0.0.1", server_->port());
        if (!tcp) return answer;
        const std::string request = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        if (!tcp->SendAll(request)) return answer;
        std::optional<std::string> raw = tcp->ReadToEof();
        if (!raw) return answer;
        answer.raw = *raw;
        const std::size_t head_end = raw->find("\r\n\r\n");
        if (raw->rfind("HTTP/1.1 ", 0) != 0 || head_end == std::string::npos) return answer;
        answer.status = std::atoi(raw->c_str() + 9);
        std::size_t pos = raw->find("\r\n") + 2;
        while (pos < head_end) {
            const std::size_t end = raw->find("\r\n", pos);
            const std::string line = raw->substr(pos, end - pos);
            pos = end + 2;
            const std::size_t colon = line.find(':');
            if (colon == std::string::npos) continue;
            std::string name = line.substr(0, colon);
            for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            answer.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
        }
        answer.body = raw->substr(head_end + 4);
        return answer;
    }
    Answer Get(const std::string& target) const { return Send("GET", target); }
};

TEST_F(StaticFilesTest, ServesFilesWithTheirTypeByExtension) {
    StartWithWeb();
    const std::map<std::string, std::string> types = {
        {"/index.html", "text/html; charset=utf-8"},
        {"/app.mjs", "text/javascript; charset=utf-8"},
        {"/app.js", "text/javascript; charset=utf-8"},
        {"/style.css", "text/css; charset=utf-8"},
        {"/data.json", "application/json"},
        {"/pic.svg", "image/svg+xml"},
        {"/pic.png", "image/png"},
        {"/favicon.ico", "image/x-icon"},
        {"/notes.txt", "text/plain; charset=utf-8"},
        {"/blob.bin", "application/octet-stream"},
        {"/alias.html", "text/html; charset=utf-8"},
        {"/sub/page.html", "text/html; charset=utf-8"},
        {"/index.html?v=2", "text/html; charset=utf-8"},
    };
    for (const auto& [path, type] : types) {
        Answer answer = Get(path);
        EXPECT_EQ(answer.status, 200) << path << "\n" << answer.raw;
        EXPECT_EQ(answer.headers["content-type"], type) << path;
    }
    EXPECT_EQ(Get("/app.mjs").body, "export const a = 1;");
    EXPECT_EQ(Get("/alias.html").body, "<h1>home</h1>");
    Answer empty = Get("/empty.txt");
    EXPECT_EQ(empty.status, 200);
    EXPECT_EQ(empty.headers["content-length"], "0");
    EXPECT_EQ(empty.body, "");
}

TEST_F(StaticFilesTest, HeadAnnouncesTheLengthWithoutTheBody) {
    StartWithWeb();
    Answer head = Send("HEAD", "/app.mjs");
    EXPECT_EQ(head.status, 200) << head.raw;
    EXPECT_EQ(head.headers["content-type"], "text/javascript; charset=utf-8");
    EXPECT_EQ(head.headers["content-length"], "19");
    EXPECT_EQ(head.body, "");
    Answer post = Send("POST", "/app.mjs");
    EXPECT_EQ(post.status, 405);
    EXPECT_EQ(post.headers["allow"], "GET, HEAD");
}

TEST_F(StaticFilesTest, IndexHtmlForADirectoryAndNotFoundForAMissingFile) {
    StartWithWeb();
    EXPECT_EQ(Get("/").body, "<h1>home</h1>");
    EXPECT_EQ(Get("/").headers["content-type"], "text/html; charset=utf-8");
    EXPECT_EQ(Get("/sub/").body, "<h1>sub</h1>");
    Answer redirect = Get("/sub");
    EXPECT_EQ(redirect.status, 301);
    EXPECT_EQ(redirect.headers["location"], "/sub/");
    EXPECT_EQ(Get("/missing.html").status, 404);
    EXPECT_EQ(Get("/sub/missing/").status, 404);
    EXPECT_EQ(Get("/.env").status, 404) << "hidden files are not served";
    EXPECT_EQ(Get("/big.bin").status, 403) << "over static_max_file_bytes";
}

TEST_F(StaticFilesTest, RefusesEveryPathLeavingTheFolder) {
    StartWithWeb();
    const std::string secret_path = (Dir() / "secret.txt").string();
    const std::map<std::string, int> refused = {
        {"/../secret.txt", 400},
        {"/sub/../../secret.txt", 400},
        {"/sub/../index.html", 400},
        {"/./index.html", 400},
        {"/%2e%2e/secret.txt", 400},
        {"/%2E%2E/secret.txt", 400},
        {"/.%2e/secret.txt", 400},
        {"/..%2fsecret.txt", 400},
        {"/sub%2f..%2f..%2fsecret.txt", 400},
        {"/%2fetc%2fpasswd", 400},
        {"/..%5csecret.txt", 400},
        {"/..\\secret.txt", 400},
        {"/sub\\..\\..\\secret.txt", 400},
        {"/" + secret_path, 400},  // "//tmp/.../secret.txt": an absolute path after the prefix
        {"/%00", 400},
        {"/index.html%00.txt", 400},
        {"/%zz", 400},
        {"/%2", 400},
        {"/escape.txt", 403},             // a symlink to the secret
        {"/escape_dir/index.html", 403},  // a symlink to a folder outside
        {"/escape_dir/", 403},
    };
    for (const auto& [target, status] : refused) {
        Answer answer = Get(target);
        EXPECT_EQ(answer.status, status) << target << "\n" << answer.raw;
        EXPECT_THAT(answer.raw, Not(HasSubstr(kSecret))) << target;
    }
    // Not a path at all (absolute-form target): nothing under "/" matches, the usual 404.
    Answer absolute_form = Get("http://127.0.0.1/../secret.txt");
    EXPECT_NE(absolute_form.status, 200);
    EXPECT_THAT(absolute_form.raw, Not(HasSubstr(kSecret)));
    // A raw NUL byte in the request line: refused, whoever refuses it.
    Answer nul = Get(std::string("/secret.txt\0/../../secret.txt", 29));
    EXPECT_NE(nul.status, 200);
    EXPECT_THAT(nul.raw, Not(HasSubstr(kSecret)));
}

TEST_F(StaticFilesTest, HealthAndWebsocketRoutesKeepPrecedence) {
    StartWithWeb();
    Answer health = Get("/healthz");
    EXPECT_EQ(health.status, 200);
    EXPECT_EQ(health.body, R"({"status":"ok"})");
    EXPECT_EQ(Get("/readyz").status, 200);
    Answer route = Get("/ws/posts/");
    EXPECT_EQ(route.status, 404) << "a websocket route's path is not a file, even when one exists";
    EXPECT_THAT(route.body, Not(HasSubstr("file route")));
    auto client = Connect("/ws/posts/");
    ASSERT_TRUE(client);
    std::optional<std::string> reply =
        client->Request(R"({"action": "create", "request_id": 1, "data": {"title": "t"}})");
    ASSERT_TRUE(reply);
    EXPECT_THAT(*reply, HasSubstr("201"));
}

TEST_F(StaticFilesTest, AMountUnderAPrefixAndTheLongestPrefixWins) {
    Write(Dir() / "js" / "client.mjs", "export {};");
    Write(Dir() / "js" / "index.html", "<h1>lib</h1>");
    StartWithWeb(R"({"/": "web", "/lib/": "js"})");
    Answer lib = Get("/lib/client.mjs");
    EXPECT_EQ(lib.status, 200);
    EXPECT_EQ(lib.body, "export {};");
    EXPECT_EQ(Get("/lib/").body, "<h1>lib</h1>");
    EXPECT_EQ(Get("/lib").status, 301);
    EXPECT_EQ(Get("/lib/index.html").body, "<h1>lib</h1>");
    EXPECT_EQ(Get("/libx").status, 404) << "/libx is under /, not /lib/";
    EXPECT_EQ(Get("/lib/../index.html").status, 400);
    EXPECT_EQ(Get("/index.html").body, "<h1>home</h1>");
}

TEST_F(StaticFilesTest, WithoutStaticFoldersEveryOtherPathIsNotFound) {
    StartFromConfig(std::string(R"({"database": "s.db", "listen": {"port": 0}, "workers": 1, )") + kModels + "}");
    Answer root = Get("/");
    EXPECT_EQ(root.status, 404);
    EXPECT_EQ(root.body, R"({"detail":"Not found."})");
}

TEST(StaticFilesConfigTest, AMissingFolderIsAConfigErrorAndFailsStart) {
    test_support::TempDir dir;
    config::Config config = config::ParseConfig(std::string(R"({"database": "s.db", "listen": {"port": 0},
        "static": {"/": "no-such-folder"}, )") + kModels +
                                                "}");
    try {
        config::BuildServer(config, dir.File(""));
        FAIL() << "BuildServer did not throw";
    } catch (const config::ConfigError& e) {
        EXPECT_THAT(e.what(), HasSubstr("static./: "));
        EXPECT_THAT(e.what(), HasSubstr("no-such-folder is not a folder"));
    }
    // A server built from C++ checks at Start, before it listens.
    transport::ServerOptions options;
    options.database = dir.File("s.db");
    options.port = 0;
    options.static_mounts.push_back(transport::StaticMount{"/", dir.File("no-such-folder")});
    transport::Server server(options);
    server.AddModel(config.models.at(0));
    try {
        server.Start();
        FAIL() << "Start did not throw";
    } catch (const std::exception& e) {
        EXPECT_THAT(e.what(), HasSubstr("no-such-folder"));
    }
}

}  // namespace
}  // namespace syncline
