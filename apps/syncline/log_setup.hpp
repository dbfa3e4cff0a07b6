#pragma once
// The log of the `syncline` binary: spdlog's default logger, its level (SPDLOG_LEVEL, then --log-level) and its line
// format (text or JSON). Every line, whichever module wrote it through spdlog, has the credentials of any URL in it
// redacted (RedactCredentials) before it is written. Called once by main's thread before the server starts.

#include <spdlog/common.h>
#include <spdlog/formatter.h>

#include <memory>
#include <optional>
#include <string>

namespace syncline::app {

/// How a log line is written.
enum class LogFormat {
    kText,  ///< spdlog's default pattern: `[2026-12-04 04:43:07.123] [info] message`.
    kJson,  ///< One JSON object per line: `{"time":"2026-12-04T04:43:07.123Z","level":"info","message":"..."}`.
};

/// A spdlog formatter that redacts every line's URL credentials, then writes it as `format` says. The JSON form
/// escapes the message with RapidJSON (control characters, quotes, backslashes; bytes that are not UTF-8 become
/// `?`), so a message can never break out of its string or its line. Thread-safe as spdlog uses formatters (one per
/// sink, under the sink's lock).
class RedactingFormatter final : public spdlog::formatter {
public:
    explicit RedactingFormatter(LogFormat format);
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
    std::unique_ptr<spdlog::formatter> clone() const override;

private:
    LogFormat format_;
    std::unique_ptr<spdlog::formatter> text_;  ///< spdlog's default pattern, for kText.
};

/// The level names `--log-level` accepts, as spdlog spells them in SPDLOG_LEVEL: debug, info, warn, error.
spdlog::level::level_enum ParseLogLevel(const std::string& name);

/// Sets the default logger's level from SPDLOG_LEVEL (spdlog::cfg::load_env_levels, e.g. `SPDLOG_LEVEL=warn`), then
/// from `level` when given (the flag wins over the environment), and its formatter to RedactingFormatter(`format`).
void ConfigureLog(const std::optional<std::string>& level, LogFormat format);

}  // namespace syncline::app
