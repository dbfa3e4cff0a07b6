// OpenBackend: the one place that chooses an engine from the `database` text.
#include <syncline/storage/backend.hpp>
#include <syncline/storage/database.hpp>

#include "postgres/pg_database.hpp"

#include <stdexcept>

namespace syncline::storage {

void Backend::RunBatch(std::vector<BatchedWrite>& writes) {
    (void)writes;
    throw std::logic_error("RunBatch: " + Describe() + " does not run batches");
}

bool IsPostgresUrl(std::string_view database) {
    return database.rfind("postgresql://", 0) == 0 || database.rfind("postgres://", 0) == 0;
}

std::unique_ptr<Backend> OpenBackend(BackendOptions options, std::vector<Schema> models) {
    if (IsPostgresUrl(options.database)) {
        return pg::PostgresDatabase::Open(std::move(options), std::move(models));
    }
    DatabaseOptions sqlite;
    sqlite.path = std::move(options.database);
    sqlite.synchronous = options.synchronous;
    sqlite.statement_cache_bytes = options.statement_cache_bytes;
    sqlite.capture_changes = options.capture_changes;
    return Database::Open(std::move(sqlite), std::move(models));
}

}  // namespace syncline::storage
