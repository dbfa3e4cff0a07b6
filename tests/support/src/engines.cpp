#include <syncline/test_support/engines.hpp>

#include <sys/wait.h>

#include <cstdlib>
#include <stdexcept>

namespace syncline::test_support {

EngineDatabase::EngineDatabase(Engine engine, const TempDir& dir, const std::string& file) : engine_(engine) {
    if (engine == Engine::kSqlite) {
        database_ = dir.File(file);
        return;
    }
    if (auto admin = PgAdminUrl()) {
        pg_ = std::make_unique<PgTestDatabase>(*admin);
        database_ = pg_->url();
    }
}

void EngineDatabase::ExecOutside(const std::string& sql) const {
    if (pg_) {
        PgTestDatabase::Exec(pg_->url(), sql);
    } else {
        SqliteShellExec(database_, sql);
    }
}

void SqliteShellExec(const std::string& path, const std::string& sql) {
    std::string quoted;
    for (char c : sql) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    // A busy timeout, as a user's shell would set: syncline's relay writes now and then.
    const std::string command = "sqlite3 -bail -cmd '.timeout 5000' '" + path + "' '" + quoted + "'";
    const int status = std::system(command.c_str());
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw std::runtime_error("sqlite3 failed: " + sql);
}

}  // namespace syncline::test_support
