// syncline_fanout: the helpers both benchmarks share (see bench_common.hpp).
#include "bench_common.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace syncline::fanout {

std::string CaseDatabase(const Options& o, const TempDir& dir, const std::string& file,
                         std::unique_ptr<test_support::PgTestDatabase>& holder) {
    if (o.pg_admin_url.empty()) return dir.File(file);
    holder = std::make_unique<test_support::PgTestDatabase>(o.pg_admin_url);
    return holder->url();
}

std::string Pad(int n) { return std::string(static_cast<std::size_t>(std::max(0, n)), 'x'); }

std::string ConfigJson(const std::string& database, unsigned workers, const std::string& redis,
                       const std::string& extra) {
    std::string text =
        R"({"database": ")" + database + R"(", "listen": {"port": 0}, "workers": )" + std::to_string(workers);
    if (!redis.empty()) text += R"(, "bus": {"redis": ")" + redis + R"("})";
    if (!extra.empty()) text += ", " + extra;
    text += R"(, "models": {"items": )" + std::string(kFields) + R"(}, "routes": {")" + kPath +
            R"(": {"model": "items", "mixins": ["patch", "observe_instance"]}}})";
    return text;
}

std::string Thousands(double value) {
    const auto v = static_cast<long long>(std::llround(value));
    std::string digits = std::to_string(v < 0 ? -v : v);
    std::string out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i != 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return (v < 0 ? "-" : "") + out;
}

std::string Fixed(double value, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
    return buf;
}

std::string JsonString(const std::string& text) {
    std::string out = "\"";
    for (char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += c;
        }
    }
    return out + "\"";
}

std::string ObserverSummary(observer::Observer& obs) {
    const observer::ObserverStats s = obs.stats();
    return "events=" + std::to_string(s.events) + " duplicates=" + std::to_string(s.duplicates) +
           " frames=" + std::to_string(s.frames) + " serializations=" + std::to_string(s.serializations);
}

}  // namespace syncline::fanout
