#pragma once
/// \file
/// Logging seam: core reports important events through a sink the composition root installs (the server installs
/// spdlog). One line per important event, never per frame.

#include <atomic>
#include <cstdint>
#include <functional>
#include <string_view>

namespace syncline {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

/// Receives log lines. Called from any thread; must be thread-safe.
using LogSink = std::function<void(LogLevel level, std::string_view message)>;

/// Installs the sink (thread-safe). The default writes warnings and errors to stderr.
void SetLogSink(LogSink sink);
/// Logs one line through the current sink, with the credentials of any URL in it redacted (RedactCredentials).
void Log(LogLevel level, std::string_view message);

/// For an event a client can repeat at will: logs its 1st, 2nd, 4th, 8th, ... occurrence (counted in `occurrences`,
/// usually a function-local static), each line ending with how many there have been, so a flood costs a few lines.
void LogRarely(std::atomic<std::uint64_t>& occurrences, LogLevel level, std::string_view message);

}  // namespace syncline
