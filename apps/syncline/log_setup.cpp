// The binary's log set-up (log_setup.hpp): level from the environment and the flag, text or JSON lines, redaction.

#include "log_setup.hpp"

#include <syncline/core/support/redact.hpp>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <spdlog/cfg/env.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>
#include <stdexcept>

namespace syncline::app {
namespace {

// The names --log-level takes, also for the JSON "level" field (spdlog's own say "warning" and "critical").
const char* LevelName(spdlog::level::level_enum level) {
    switch (level) {
        case spdlog::level::trace:
            return "trace";
        case spdlog::level::debug:
            return "debug";
        case spdlog::level::info:
            return "info";
        case spdlog::level::warn:
            return "warn";
        case spdlog::level::err:
            return "error";
        case spdlog::level::critical:
            return "critical";
        default:
            return "off";
    }
}

// 2026-12-04T04:43:07.123Z
std::string IsoTime(spdlog::log_clock::time_point time) {
    const auto since_epoch = time.time_since_epoch();
    const std::time_t seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch).count();
    const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch).count() % 1000;
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char text[40];
    const std::size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
    std::snprintf(text + n, sizeof text - n, ".%03dZ", static_cast<int>(millis));
    return text;
}

// One JSON object; false when `message` is not valid UTF-8 (the writer refuses it rather than write invalid JSON).
bool WriteJson(const std::string& time, const char* level, const std::string& message, rapidjson::StringBuffer& out) {
    rapidjson::Writer<rapidjson::StringBuffer, rapidjson::UTF8<>, rapidjson::UTF8<>, rapidjson::CrtAllocator,
                      rapidjson::kWriteValidateEncodingFlag>
        writer(out);
    writer.StartObject();
    writer.Key("time");
    writer.String(time.c_str(), static_cast<rapidjson::SizeType>(time.size()));
    writer.Key("level");
    writer.String(level);
    writer.Key("message");
    if (!writer.String(message.c_str(), static_cast<rapidjson::SizeType>(message.size()))) return false;
    writer.EndObject();
    return true;
}

}  // namespace

RedactingFormatter::RedactingFormatter(LogFormat format)
    : format_(format), text_(std::make_unique<spdlog::pattern_formatter>()) {}

void RedactingFormatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
    const std::string message = RedactCredentials(std::string_view(msg.payload.data(), msg.payload.size()));
    if (format_ == LogFormat::kText) {
        spdlog::details::log_msg redacted = msg;
        redacted.payload = spdlog::string_view_t(message.data(), message.size());
        text_->format(redacted, dest);
        // The colour sink reads where the level name sits from the message it passed in.
        msg.color_range_start = redacted.color_range_start;
        msg.color_range_end = redacted.color_range_end;
        return;
    }
    const std::string time = IsoTime(msg.time);
    rapidjson::StringBuffer out;
    if (!WriteJson(time, LevelName(msg.level), message, out)) {
        // Not UTF-8 (e.g. a raw byte quoted from a client): every non-ASCII byte becomes '?', which always writes.
        std::string ascii = message;
        for (char& c : ascii) {
            if (static_cast<unsigned char>(c) >= 0x80) c = '?';
        }
        out.Clear();
        WriteJson(time, LevelName(msg.level), ascii, out);
    }
    dest.append(out.GetString(), out.GetString() + out.GetSize());
    dest.push_back('\n');
}

std::unique_ptr<spdlog::formatter> RedactingFormatter::clone() const {
    return std::make_unique<RedactingFormatter>(format_);
}

spdlog::level::level_enum ParseLogLevel(const std::string& name) {
    if (name == "debug") return spdlog::level::debug;
    if (name == "info") return spdlog::level::info;
    if (name == "warn") return spdlog::level::warn;
    if (name == "error") return spdlog::level::err;
    throw std::invalid_argument("unknown log level \"" + name + "\"; valid levels: debug, info, warn, error");
}

void ConfigureLog(const std::optional<std::string>& level, LogFormat format) {
    spdlog::cfg::load_env_levels();
    if (level) spdlog::set_level(ParseLogLevel(*level));
    spdlog::set_formatter(std::make_unique<RedactingFormatter>(format));
}

}  // namespace syncline::app
