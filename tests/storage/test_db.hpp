#pragma once
// Shared fixtures of the storage tests: a temporary directory, the blog schema, and running other processes.

#include <syncline/core/model/schema.hpp>
#include <syncline/storage/backend.hpp>
#include <syncline/storage/database.hpp>

// By path: helper programs that include this header (syncline_test_writer) are not test targets.
#include "../support/include/syncline/test_support/sandbox.hpp"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace syncline::testing {

/// A fresh directory, removed with everything in it when the object goes away.
using TempDir = test_support::TempDir;

inline Schema PostsSchema() {
    return Schema::FromJson("posts", R"({"fields": {
        "id":     {"type": "integer", "primary_key": true},
        "title":  {"type": "text", "max_length": 100},
        "body":   {"type": "text", "blank": true, "default": ""},
        "author": {"type": "text", "max_length": 50, "blank": true, "default": ""},
        "likes":  {"type": "integer", "null": true},
        "public": {"type": "boolean", "default": false}}})");
}

inline Schema TagsSchema() {
    return Schema::FromJson("tags", R"({"fields": {
        "slug":  {"type": "text", "primary_key": true},
        "label": {"type": "text", "unique": true}}})");
}

/// One nullable column of each scalar type: the queries' tests (query_safety_test, where_builder_test).
inline Schema ItemsSchema() {
    return Schema::FromJson("items", R"({"fields": {
        "id": {"type": "integer", "primary_key": true},
        "t":  {"type": "text", "null": true, "blank": true},
        "n":  {"type": "integer", "null": true},
        "r":  {"type": "real", "null": true},
        "b":  {"type": "boolean", "null": true}}})");
}

/// The blog models on any database (storage::OpenBackend: an SQLite path or a postgresql:// URL).
inline std::unique_ptr<storage::Backend> OpenBlogBackend(const std::string& database) {
    storage::BackendOptions options;
    options.database = database;
    return storage::OpenBackend(options, {PostsSchema(), TagsSchema()});
}

inline std::unique_ptr<storage::Database> OpenBlog(const std::string& path,
                                                   storage::Synchronous sync = storage::Synchronous::kNormal) {
    storage::DatabaseOptions options;
    options.path = path;
    options.synchronous = sync;
    return storage::Database::Open(options, {PostsSchema(), TagsSchema()});
}

/// Runs a shell command line and returns its exit status.
inline int Run(const std::string& command) {
    int status = std::system(command.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// Runs SQL through the `sqlite3` command-line shell on `db_path`, as a user in another terminal would.
inline int SqliteShell(const std::string& db_path, const std::string& sql) {
    std::string quoted;
    for (char c : sql) {
        if (c == '\'') {
            quoted += "'\\''";
        } else {
            quoted += c;
        }
    }
    // A busy timeout, as a user's shell would set: syncline's relay writes now and then (trimming), and the shell's
    // default is to fail at once on a locked database.
    return Run("sqlite3 -bail -cmd '.timeout 5000' '" + db_path + "' '" + quoted + "'");
}

/// The directory of the running test binary (where the helper executables are built too).
using test_support::BinDir;

}  // namespace syncline::testing
