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

namespace syncline::storage {
namespace {

std::int64_t NowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// `columns` of the latest change of a row still in the feed (no row when none). Newest first: a row that changed
// recently is found after a short scan; a row whose changes were all trimmed costs a scan of the retained feed.
Statement LatestChange(Connection& conn, const std::string& columns, const Schema& schema, const Value& pk) {
    Statement st = conn.Prepare("SELECT " + columns +
                                " FROM _syncline_changes WHERE tbl = ?1 AND pk = ?2 ORDER BY seq DESC LIMIT 1");
    st.BindText(1, schema.table());
    st.Bind(2, pk);
    return st;
}

}  // namespace

std::int64_t Database::RowVersion(std::string_view table, const Value& pk) const {
    const Schema& schema = Model(table);
    Connection& conn = Reader();
    auto use = conn.Use();
    Statement st = LatestChange(conn, "seq", schema, pk);
    return st.Step() ? st.ColumnInt(0) : 0;
}

std::optional<ModelStore::LastChangeInfo> Database::LastChange(std::string_view table, const Value& pk) const {
    const Schema& schema = Model(table);
    Connection& conn = Reader();
    auto use = conn.Use();
    Statement st = LatestChange(conn, "seq, op, old", schema, pk);
    if (!st.Step()) return std::nullopt;
    LastChangeInfo info;
    info.version = st.ColumnInt(0);
    info.deleted = static_cast<ChangeOp>(st.ColumnInt(1)) == ChangeOp::kDelete;
    if (!st.ColumnIsNull(2)) {
        try {
            info.before = RowFromJson(schema, st.ColumnText(2));
        } catch (const std::invalid_argument&) {
            // An unreadable image is an unknown one.
        }
    }
    return info;
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
