// Redaction of credentials in URLs and in text that embeds them (see redact.hpp).

#include <syncline/core/support/redact.hpp>

namespace syncline {
namespace {

bool IsSchemeChar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' || c == '-' ||
           c == '.';
}

// Where a URL embedded in prose ends: the characters that usually delimit it in a message.
bool EndsUrl(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '"' || c == '\'' || c == '`' || c == '<' || c == '>';
}

}  // namespace

std::string RedactUrl(std::string_view url) {
    std::size_t start = url.find("://");
    start = start == std::string_view::npos ? 0 : start + 3;
    // The last '@', not the first: passwords may contain '@' (and '/', '?', '#'); hiding too much beats leaking.
    std::size_t at = url.rfind('@');
    if (at == std::string_view::npos || at < start) return std::string(url);
    std::string_view userinfo = url.substr(start, at - start);
    std::string out(url.substr(0, start));
    if (std::size_t colon = userinfo.find(':'); colon != std::string_view::npos) {
        out.append(userinfo.substr(0, colon + 1));
    }
    out.append(kRedacted);
    out.append(url.substr(at));
    return out;
}

std::string RedactCredentials(std::string_view text) {
    std::size_t marker = text.find("://");
    if (marker == std::string_view::npos) return std::string(text);
    std::string out;
    out.reserve(text.size());
    std::size_t copied = 0;  // text before this offset is in `out`
    while (marker != std::string_view::npos) {
        std::size_t begin = marker;
        while (begin > copied && IsSchemeChar(text[begin - 1])) --begin;
        std::size_t end = marker + 3;
        while (end < text.size() && !EndsUrl(text[end])) ++end;
        out.append(text.substr(copied, begin - copied));
        out.append(RedactUrl(text.substr(begin, end - begin)));
        copied = end;
        marker = text.find("://", end);
    }
    out.append(text.substr(copied));
    return out;
}

}  // namespace syncline
