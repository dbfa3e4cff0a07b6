#pragma once
/// \file
/// Scratch space for tests and benchmarks: a temporary directory, a free loopback port and the directory of the
/// running binary. Header-only, no dependencies beyond POSIX, so the benchmarks use it without building the tests.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

namespace syncline::test_support {

/// A fresh directory, removed with everything in it when the object goes away.
class TempDir {
public:
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "syncline-XXXXXX").string();
        if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    /// The path of `name` inside the directory.
    std::string File(const std::string& name) const { return (path_ / name).string(); }
    /// The directory itself.
    std::string path() const { return path_.string(); }

private:
    std::filesystem::path path_;
};

/// A loopback port that was free a moment ago (bind to port 0, read it, release it).
inline std::uint16_t FreePort() {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    close(fd);
    return ntohs(addr.sin_port);
}

/// The directory of the running test binary (where the helper executables and `syncline` are built too).
inline std::string BinDir() { return std::filesystem::canonical("/proc/self/exe").parent_path().string(); }

}  // namespace syncline::test_support
