// Fuzz target "handshake": a HandshakeRequest built from the input, read through HandshakeRequest::Header,
// QueryParam and Cookie (each compared with a reference written here), FindToken, and AuthenticateHandshake with a
// static token table and an HS256 JWT authenticator chained (core/include/syncline/core/auth/auth.hpp and the auth
// module, auth/include/syncline/auth/).
//
// Input: one policy byte, then lines separated by '\n': the path, the query string, then headers as "name:value"
// (the name as written; lines without ':' are headers with an empty value). Policy bits: 0 anonymous refuse, 1
// invalid_token refuse, 2 no bearer header, 3 query parameter "t" instead of "token", 4 no cookie, 5 tokens only,
// 6 JWT only. Checks: the helpers agree with the references; the handshake answers 101 or 401 as the policy says
// (never 500: the built-in authenticators do not throw); the table's token gives its user; at most one log line per
// handshake, and no log line holds the table's tokens or the JWT secret (unless the path, which is logged, does).

#include <syncline/auth/jwt_authenticator.hpp>
#include <syncline/core/auth/auth.hpp>
#include <syncline/core/protocol/session.hpp>
#include <syncline/core/support/log.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

constexpr std::string_view kAliceToken = "dev-token-alice-0123";
constexpr std::string_view kBobToken = "dev-token-bob-4567";
constexpr std::string_view kJwtSecret = "fuzz-jwt-secret-0123456789";

[[noreturn]] void Fail(const char* what) {
    std::fprintf(stderr, "handshake fuzzer: %s\n", what);
    std::abort();
}

// --- References ----------------------------------------------------------------------------------------------------

bool SameIgnoringAsciiCase(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i];
        char y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
        if (x != y) return false;
    }
    return true;
}

std::optional<std::string> ReferenceHeader(const syncline::HandshakeRequest& r, std::string_view name) {
    for (std::size_t i = 0; i < r.headers.size(); ++i) {
        if (SameIgnoringAsciiCase(r.headers[i].first, name)) return r.headers[i].second;
    }
    return std::nullopt;
}

int Hex(char c) {
    const std::string_view digits = "0123456789abcdef0123456789ABCDEF";
    const std::size_t at = digits.find(c);
    return at == std::string_view::npos ? -1 : static_cast<int>(at % 16);
}

// application/x-www-form-urlencoded: '+' is a space, %XX a byte, anything else (a stray '%') as it is.
std::string ReferenceFormDecode(std::string_view s) {
    std::string out;
    std::size_t i = 0;
    while (i < s.size()) {
        if (s[i] == '%' && s.size() - i >= 3 && Hex(s[i + 1]) >= 0 && Hex(s[i + 2]) >= 0) {
            out += static_cast<char>(Hex(s[i + 1]) * 16 + Hex(s[i + 2]));
            i += 3;
        } else {
            out += s[i] == '+' ? ' ' : s[i];
            i += 1;
        }
    }
    return out;
}

std::vector<std::string_view> SplitOn(std::string_view s, char separator) {
    std::vector<std::string_view> parts;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= s.size(); ++i) {
        if (i == s.size() || s[i] == separator) {
            parts.push_back(s.substr(start, i - start));
            start = i + 1;
        }
    }
    return parts;
}

std::optional<std::string> ReferenceQueryParam(const syncline::HandshakeRequest& r, std::string_view name) {
    if (r.query.empty()) return std::nullopt;
    for (std::string_view pair : SplitOn(r.query, '&')) {
        if (pair.empty()) continue;
        const std::size_t eq = pair.find('=');
        if (ReferenceFormDecode(pair.substr(0, eq)) != name) continue;
        return eq == std::string_view::npos ? std::string() : ReferenceFormDecode(pair.substr(eq + 1));
    }
    return std::nullopt;
}

std::string_view StripBlanks(std::string_view s) {
    const std::size_t first = s.find_first_not_of(" \t");
    if (first == std::string_view::npos) return {};
    return s.substr(first, s.find_last_not_of(" \t") - first + 1);
}

std::optional<std::string> ReferenceCookie(const syncline::HandshakeRequest& r, std::string_view name) {
    for (const auto& [key, value] : r.headers) {
        if (!SameIgnoringAsciiCase(key, "cookie") || value.empty()) continue;
        for (std::string_view item : SplitOn(value, ';')) {
            item = StripBlanks(item);
            const std::size_t eq = item.find('=');
            if (eq == std::string_view::npos || StripBlanks(item.substr(0, eq)) != name) continue;
            std::string_view v = StripBlanks(item.substr(eq + 1));
            if (v.size() >= 2 && v[0] == '"' && v[v.size() - 1] == '"') v = v.substr(1, v.size() - 2);
            return std::string(v);
        }
    }
    return std::nullopt;
}

// The token FindToken should find, by the documented order: a Bearer Authorization header, the query parameter,
// the cookie.
std::optional<std::string> ReferenceToken(const syncline::HandshakeRequest& r, const syncline::TokenSources& s) {
    if (s.bearer_header) {
        if (auto header = ReferenceHeader(r, "Authorization")) {
            const std::string_view value = StripBlanks(*header);
            if (value.size() >= 6 && SameIgnoringAsciiCase(value.substr(0, 6), "bearer") &&
                (value.size() == 6 || value[6] == ' ' || value[6] == '\t')) {
                return std::string(StripBlanks(value.substr(6)));
            }
        }
    }
    if (!s.query_param.empty()) {
        if (auto token = ReferenceQueryParam(r, s.query_param)) return token;
    }
    if (!s.cookie.empty()) return ReferenceCookie(r, s.cookie);
    return std::nullopt;
}

// --- The handshake -------------------------------------------------------------------------------------------------

std::vector<std::string>& LogLines() {
    static std::vector<std::string> lines;
    return lines;
}

syncline::HandshakeRequest RequestOf(std::string_view text) {
    syncline::HandshakeRequest request;
    request.remote = "127.0.0.1:40000";
    std::vector<std::string_view> lines = SplitOn(text, '\n');
    request.path = std::string(lines[0]);
    if (lines.size() > 1) request.query = std::string(lines[1]);
    for (std::size_t i = 2; i < lines.size(); ++i) {
        const std::size_t colon = lines[i].find(':');
        request.headers.emplace_back(
            std::string(lines[i].substr(0, colon)),
            colon == std::string_view::npos ? std::string() : std::string(lines[i].substr(colon + 1)));
    }
    return request;
}

syncline::AuthOptions OptionsOf(std::uint8_t policy, const syncline::TokenSources& sources) {
    std::map<std::string, syncline::User> table;
    table.emplace(std::string(kAliceToken), syncline::User{true, "1", "alice", {"editors"}, ""});
    table.emplace(std::string(kBobToken), syncline::User{true, "bob", "bob", {}, ""});
    auto tokens = std::make_shared<syncline::auth::StaticTokenAuthenticator>(table, sources);
    auto jwt = std::make_shared<syncline::auth::JwtAuthenticator>(
        syncline::auth::JwtOptions{std::string(kJwtSecret), 30}, sources);
    syncline::AuthOptions options;
    if (policy & 0x20) {
        options.authenticator = tokens;
    } else if (policy & 0x40) {
        options.authenticator = jwt;
    } else {
        options.authenticator = std::make_shared<syncline::ChainAuthenticator>(
            std::vector<std::shared_ptr<const syncline::Authenticator>>{tokens, jwt});
    }
    options.anonymous = (policy & 0x01) ? syncline::AnonymousPolicy::kRefuse : syncline::AnonymousPolicy::kAllow;
    options.invalid_credential =
        (policy & 0x02) ? syncline::InvalidCredentialPolicy::kRefuse : syncline::InvalidCredentialPolicy::kAnonymous;
    return options;
}

bool Contains(std::string_view haystack, std::string_view needle) { return haystack.find(needle) != haystack.npos; }

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
    (void)argc;
    (void)argv;
    syncline::SetLogSink([](syncline::LogLevel, std::string_view line) { LogLines().emplace_back(line); });
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::uint8_t policy = data[0];
    const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    const syncline::HandshakeRequest request = RequestOf(text);

    std::vector<std::string> header_names = {"authorization", "Cookie", "origin", ""};
    for (std::size_t i = 0; i < request.headers.size() && i < 4; ++i) header_names.push_back(request.headers[i].first);
    for (const auto& name : header_names) {
        if (request.Header(name) != ReferenceHeader(request, name)) Fail("Header differs from the reference");
    }
    std::vector<std::string> query_names = {"token", "t", ""};
    if (!request.query.empty()) query_names.push_back(ReferenceFormDecode(SplitOn(request.query, '&')[0]));
    for (const auto& name : query_names) {
        if (request.QueryParam(name) != ReferenceQueryParam(request, name)) Fail("QueryParam differs");
    }
    std::vector<std::string> cookie_names = {"token", "sessionid", ""};
    if (auto cookie = ReferenceHeader(request, "cookie")) {
        cookie_names.emplace_back(StripBlanks(SplitOn(*cookie, '=')[0]));
    }
    for (const auto& name : cookie_names) {
        if (request.Cookie(name) != ReferenceCookie(request, name)) Fail("Cookie differs from the reference");
    }

    syncline::TokenSources sources;
    sources.bearer_header = (policy & 0x04) == 0;
    if (policy & 0x08) sources.query_param = "t";
    if (policy & 0x10) sources.cookie.clear();
    const std::optional<syncline::FoundToken> found = syncline::FindToken(request, sources);
    const std::optional<std::string> expected = ReferenceToken(request, sources);
    if (found.has_value() != expected.has_value() || (found && found->token != *expected)) {
        Fail("FindToken differs from the reference");
    }

    const syncline::AuthOptions options = OptionsOf(policy, sources);
    LogLines().clear();
    const syncline::HandshakeAuth auth = syncline::AuthenticateHandshake(options, request);
    if (auth.status != 101 && auth.status != syncline::kAuthRefusedStatus) Fail("a status other than 101 or 401");
    if (auth.status == 101 && auth.user.authenticated && auth.user.id.empty()) Fail("an authenticated user without id");
    if (auth.status != 101 && auth.user.authenticated) Fail("a refused handshake with a user");
    if (!found && (auth.user.authenticated ||
                   (auth.status == 101) == (options.anonymous == syncline::AnonymousPolicy::kRefuse))) {
        Fail("no token, yet the anonymous policy was not applied");
    }
    if (found && found->token == kAliceToken && !(policy & 0x40) && (auth.status != 101 || auth.user.id != "1")) {
        Fail("the table's token did not give its user");
    }
    if (found && auth.status == 101 && !auth.user.authenticated &&
        options.invalid_credential == syncline::InvalidCredentialPolicy::kRefuse) {
        Fail("an invalid token connected although invalid tokens are refused");
    }
    if (LogLines().size() > 1) Fail("more than one log line for one handshake");
    // Log lines name the path (as sent), never a credential: look for secrets the path does not hold itself.
    for (const auto& line : LogLines()) {
        for (std::string_view secret : {kAliceToken, kBobToken, kJwtSecret}) {
            if (!Contains(request.path, secret) && Contains(line, secret)) Fail("a secret reached the log");
        }
    }
    return 0;
}
