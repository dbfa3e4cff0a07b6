#include <syncline/core/support/log.hpp>

#include <syncline/core/support/redact.hpp>

#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

namespace syncline {
namespace {

std::mutex& SinkMutex() {
    static std::mutex mutex;
    return mutex;
}

std::shared_ptr<LogSink>& Sink() {
    static std::shared_ptr<LogSink> sink;
    return sink;
}

}  // namespace

void SetLogSink(LogSink sink) {
    std::lock_guard<std::mutex> lock(SinkMutex());
    Sink() = sink ? std::make_shared<LogSink>(std::move(sink)) : nullptr;
}

void Log(LogLevel level, std::string_view message) {
    // A safety net: a URL's password never reaches a sink, whichever exception message or value carried it here.
    std::string redacted;
    if (message.find("://") != std::string_view::npos) {
        redacted = RedactCredentials(message);
        message = redacted;
    }
    std::shared_ptr<LogSink> sink;
    {
        std::lock_guard<std::mutex> lock(SinkMutex());
        sink = Sink();
    }
    if (sink) {
        (*sink)(level, message);
    } else if (level >= LogLevel::kWarn) {
        std::fprintf(stderr, "syncline: %.*s\n", static_cast<int>(message.size()), message.data());
    }
}

void LogRarely(std::atomic<std::uint64_t>& occurrences, LogLevel level, std::string_view message) {
    const std::uint64_t n = occurrences.fetch_add(1) + 1;
    if ((n & (n - 1)) != 0) return;  // not a power of two
    Log(level, std::string(message) + " (" + std::to_string(n) + (n == 1 ? " time so far)" : " times so far)"));
}

}  // namespace syncline
