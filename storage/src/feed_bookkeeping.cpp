// What the Database does with the change feed besides capturing it: the row versions read from it (RowVersion,
// LastChange; any thread, on the thread's reader), and the bookkeeping writes, serialized on the writer with the other
// writes: named cursors (consumer positions that trimming respects), leases (which process's relay publishes), and
// trimming. change_feed.cpp reads the feed in order.
#include <syncline/storage/database.hpp>

#include <syncline/core/model/change.hpp>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>

#include "connection.hpp"
#include "schema_sql.hpp"

namespace syncline::storage {
namespace {

std::int64_t NowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// What the store knows of a row's version: from the row (its version column, NULL when not changed since capture
// began) or from its tombstone; no row when neither has it.
Statement VersionEntry(Connection& conn, const Schema& schema, const Value& pk) {
    Statement st = conn.Prepare("SELECT " + Quote(kVersionColumn) + ", 0 FROM " + Quote(schema.storage_table()) +
                                " WHERE " + Quote(schema.pk().name) + " = ?1 UNION ALL SELECT seq, 1 FROM " +
                                Quote(TombstoneTable(schema)) + " WHERE pk = ?1 LIMIT 1");
    st.Bind(1, pk);
    return st;
}

std::int64_t VersionFloor(Connection& conn, const Schema& schema) {
    const std::string key = "floor:" + schema.table();  // bound without a copy: it must outlive the statement
    Statement st = conn.Prepare("SELECT value FROM _syncline_meta WHERE key = ?1");
    st.BindText(1, key);
    return st.Step() ? st.ColumnInt(0) : 0;
}

// A read transaction on one connection, ended (COMMIT: it wrote nothing) when destroyed; or nothing at all, joining
// the transaction already open on that connection.
class SqliteReadScope final : public ModelStore::ReadScope {
public:
    explicit SqliteReadScope(Connection& conn) : conn_(conn) {
        auto use = conn_.Use();
        owner_ = sqlite3_get_autocommit(conn_.handle()) != 0;
        if (owner_) conn_.Exec("BEGIN");
        // The first read starts the snapshot; this one also tells its newest version.
        Statement st = conn_.Prepare("SELECT coalesce(max(seq), 0) FROM " + std::string(kChangesTable));
        st.Step();
        version_ = st.ColumnInt(0);
    }
    ~SqliteReadScope() override {
        if (!owner_) return;
        auto use = conn_.Use();
        try {
            conn_.Exec("COMMIT");
        } catch (const std::exception&) {
            // Never leave the thread's reader inside an old snapshot.
            try {
                conn_.Exec("ROLLBACK");
            } catch (const std::exception&) {
            }
        }
    }
    std::int64_t version() const override { return version_; }

private:
    Connection& conn_;
    bool owner_ = false;
    std::int64_t version_ = 0;
};

}  // namespace

std::int64_t Database::RowVersion(std::string_view table, const Value& pk) const {
    const Schema& schema = Model(table);
    Connection& conn = Reader();
    auto use = conn.Use();
    Statement st = VersionEntry(conn, schema, pk);
    if (st.Step() && !st.ColumnIsNull(0)) return st.ColumnInt(0);
    return VersionFloor(conn, schema);
}

std::optional<ModelStore::LastChangeInfo> Database::LastChange(std::string_view table, const Value& pk) const {
    const Schema& schema = Model(table);
    Connection& conn = Reader();
    auto use = conn.Use();
    LastChangeInfo info;
    {
        Statement st = VersionEntry(conn, schema, pk);
        if (!st.Step() || st.ColumnIsNull(0)) return std::nullopt;
        info.version = st.ColumnInt(0);
        info.deleted = st.ColumnInt(1) != 0;
    }
    Statement st = conn.Prepare("SELECT old FROM " + std::string(kChangesTable) + " WHERE seq = ?1");
    st.BindInt(1, info.version);
    if (st.Step() && !st.ColumnIsNull(0)) {
        try {
            info.before = RowFromJson(schema, st.ColumnText(0));
        } catch (const std::invalid_argument&) {
            // An unreadable image is an unknown one.
        }
    }
    return info;
}

std::unique_ptr<ModelStore::ReadScope> Database::ReadSnapshot() const {
    return std::make_unique<SqliteReadScope>(Reader());
}

std::optional<std::vector<ModelStore::ChangedRow>> Database::ChangedSince(std::string_view table,
                                                                          std::int64_t since) const {
    const Schema& schema = Model(table);
    Connection& conn = Reader();
    auto use = conn.Use();
    if (since < VersionFloor(conn, schema)) return std::nullopt;
    std::int64_t oldest = 0;
    {
        Statement st = conn.Prepare("SELECT coalesce(min(seq), 0) FROM " + std::string(kChangesTable));
        st.Step();
        oldest = st.ColumnInt(0);
    }
    // While the feed holds every change after `since`, read them (a range of seqs); else scan the version table.
    Statement st = oldest != 0 && oldest <= since + 1
                       ? conn.Prepare("SELECT pk, max(seq), op = 3 FROM " + std::string(kChangesTable) +
                                      " WHERE seq > ?1 AND tbl = ?2 GROUP BY pk")
                       : conn.Prepare("SELECT " + Quote(schema.pk().name) + ", " + Quote(kVersionColumn) + ", 0 FROM " +
                                      Quote(schema.storage_table()) + " WHERE " + Quote(kVersionColumn) +
                                      " > ?1 AND ?2 IS NOT NULL UNION ALL SELECT pk, seq, 1 FROM " +
                                      Quote(TombstoneTable(schema)) + " WHERE seq > ?1");
    st.BindInt(1, since);
    st.BindText(2, schema.table());
    std::vector<ChangedRow> rows;
    while (st.Step()) rows.push_back(ChangedRow{st.Column(0, schema.pk().type), st.ColumnInt(1), st.ColumnInt(2) != 0});
    return rows;
}

void Database::SetCursor(const std::string& name, std::int64_t seq) {
    WriterLock lock(this);
    auto use = writer_->Use();
    Statement st = writer_->Prepare(
        "INSERT INTO _syncline_cursors (name, seq, updated_ms) VALUES (?1, ?2, ?3) "
        "ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, updated_ms = excluded.updated_ms");
    st.BindText(1, name);
    st.BindInt(2, seq);
    st.BindInt(3, NowMs());
    st.Step();
}

void Database::RemoveCursor(const std::string& name) {
    WriterLock lock(this);
    auto use = writer_->Use();
    Statement st = writer_->Prepare("DELETE FROM _syncline_cursors WHERE name = ?1");
    st.BindText(1, name);
    st.Step();
}

std::optional<std::int64_t> Database::GetCursor(const std::string& name) const {
    Connection& conn = Reader();
    auto use = conn.Use();
    Statement st = conn.Prepare("SELECT seq FROM _syncline_cursors WHERE name = ?1");
    st.BindText(1, name);
    if (!st.Step()) return std::nullopt;
    return st.ColumnInt(0);
}

bool Database::HoldLease(const std::string& name, const std::string& holder, std::chrono::milliseconds ttl) {
    WriterLock lock(this);
    auto use = writer_->Use();
    std::int64_t now = NowMs();
    Statement st = writer_->Prepare(
        "INSERT INTO _syncline_leases (name, holder, expires_ms) VALUES (?1, ?2, ?3) "
        "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms "
        "WHERE _syncline_leases.holder = excluded.holder OR _syncline_leases.expires_ms < ?4");
    st.BindText(1, name);
    st.BindText(2, holder);
    st.BindInt(3, now + ttl.count());
    st.BindInt(4, now);
    st.Step();
    return sqlite3_changes(writer_->handle()) > 0;
}

void Database::ReleaseLease(const std::string& name, const std::string& holder) {
    WriterLock lock(this);
    auto use = writer_->Use();
    Statement st = writer_->Prepare("DELETE FROM _syncline_leases WHERE name = ?1 AND holder = ?2");
    st.BindText(1, name);
    st.BindText(2, holder);
    st.Step();
}

std::int64_t Database::Trim(std::chrono::milliseconds horizon) {
    WriterLock lock(this);
    auto use = writer_->Use();
    Connection& w = *writer_;
    w.Exec("BEGIN IMMEDIATE");
    try {
        std::int64_t now = NowMs();
        auto scalar = [&](const std::string& sql, std::int64_t bind) -> std::optional<std::int64_t> {
            Statement st = w.Prepare(sql);
            if (sql.find('?') != std::string::npos) st.BindInt(1, bind);
            st.Step();
            if (st.ColumnIsNull(0)) return std::nullopt;
            return st.ColumnInt(0);
        };
        std::int64_t latest = scalar("SELECT max(seq) FROM _syncline_changes", 0).value_or(0);
        {
            Statement st = w.Prepare("INSERT INTO _syncline_trim_marks (at_ms, seq) VALUES (?1, ?2)");
            st.BindInt(1, now);
            st.BindInt(2, latest);
            st.Step();
        }
        // The latest seq that was already committed `horizon` ago: everything up to it is older than the horizon.
        std::optional<std::int64_t> bound =
            scalar("SELECT max(seq) FROM _syncline_trim_marks WHERE at_ms <= ?1", now - horizon.count());
        std::int64_t deleted = 0;
        if (bound) {
            std::int64_t limit = std::min(*bound, latest - 1);  // keep the latest change: seq is never reused
            if (auto cursor = scalar("SELECT min(seq) FROM _syncline_cursors", 0)) limit = std::min(limit, *cursor);
            Statement del = w.Prepare("DELETE FROM _syncline_changes WHERE seq <= ?1");
            del.BindInt(1, limit);
            del.Step();
            deleted = sqlite3_changes(w.handle());
            // Tombstones as old as the trimmed changes go too; a table that lost some raises its version floor to
            // the newest of them, so a `since` below it reads as unknowable (the delete is pushed, a list resent).
            for (const Schema& schema : models_) {
                const std::string tombstones = Quote(TombstoneTable(schema));
                std::optional<std::int64_t> newest =
                    scalar("SELECT max(seq) FROM " + tombstones + " WHERE seq <= ?1", limit);
                if (!newest) continue;
                Statement gone = w.Prepare("DELETE FROM " + tombstones + " WHERE seq <= ?1");
                gone.BindInt(1, limit);
                gone.Step();
                Statement floor = w.Prepare(
                    "INSERT INTO _syncline_meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = "
                    "max(value, excluded.value)");
                const std::string key = "floor:" + schema.table();  // bound without a copy
                floor.BindText(1, key);
                floor.BindInt(2, *newest);
                floor.Step();
            }
            Statement marks = w.Prepare("DELETE FROM _syncline_trim_marks WHERE seq < ?1");
            marks.BindInt(1, *bound);
            marks.Step();
        }
        w.Exec("COMMIT");
        return deleted;
    } catch (...) {
        w.Exec("ROLLBACK");
        throw;
    }
}

}  // namespace syncline::storage
