#pragma once
/// \file
/// Logging seam: core reports important events through a sink the composition root installs (the server installs
/// spdlog). One line per important event, never per frame.

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

}  // namespace syncline
