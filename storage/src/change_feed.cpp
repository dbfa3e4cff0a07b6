#include <syncline/storage/change_feed.hpp>

#include <syncline/storage/database.hpp>

#include <algorithm>
#include <optional>

#include "connection.hpp"
#include "schema_sql.hpp"

namespace syncline::storage {
namespace {

std::string RowByPkSql(const Schema& schema) {
    std::string cols;
    for (const auto& f : schema.fields()) cols += (cols.empty() ? "" : ", ") + Quote(f.name);
    // The row's version last: a row whose version is past the change being read is ahead of it (ChangeEvent::ahead).
    return "SELECT " + cols + ", " + Quote(kVersionColumn) + " FROM " + Quote(schema.storage_table()) + " WHERE " +
           Quote(schema.pk().name) + " = ?1";
}

}  // namespace

ChangeFeed::ChangeFeed(Database& db, FeedOptions options)
    : db_(db), options_(options), conn_(db.OpenConnection(false)) {}

ChangeFeed::~ChangeFeed() = default;

std::int64_t ChangeFeed::LatestSeq() {
    auto use = conn_->Use();
    Statement st = conn_->Prepare("SELECT max(seq) FROM _syncline_changes");
    st.Step();
    return st.ColumnInt(0);
}

std::vector<ChangeEvent> ChangeFeed::ReadAfter(std::int64_t cursor, std::size_t max_batch) {
    auto use = conn_->Use();
    std::vector<ChangeEvent> events;
    // One read transaction: the changes and the rows they point at come from the same snapshot. A row may still be
    // newer than its change when a later change of it is past the LIMIT: that event is marked ahead.
    conn_->Exec("BEGIN");
    try {
        Statement changes = conn_->Prepare(
            "SELECT seq, tbl, pk, op, old FROM _syncline_changes WHERE seq > ?1 ORDER BY seq LIMIT ?2");
        changes.BindInt(1, cursor);
        changes.BindInt(2, static_cast<std::int64_t>(std::max<std::size_t>(max_batch, 1)));
        // The row lookup statement is held across the batch (changes of one table usually come in runs).
        const Schema* last_schema = nullptr;
        std::string last_table;
        std::optional<Statement> row_stmt;
        while (changes.Step()) {
            ChangeEvent event;
            event.seq = changes.ColumnInt(0);
            event.table = changes.ColumnText(1);
            event.pk = changes.ColumnAny(2);
            event.op = static_cast<ChangeOp>(changes.ColumnInt(3));
            if (!changes.ColumnIsNull(4)) event.old_json = changes.ColumnText(4);
            if (event.op != ChangeOp::kDelete) {
                if (event.table != last_table) {
                    auto it = std::find_if(db_.models().begin(), db_.models().end(),
                                           [&](const Schema& s) { return s.table() == event.table; });
                    last_schema = it == db_.models().end() ? nullptr : &*it;
                    last_table = event.table;
                    row_stmt.reset();
                    if (last_schema) row_stmt.emplace(conn_->Prepare(RowByPkSql(*last_schema)));
                }
                if (row_stmt) {
                    row_stmt->Reset();
                    row_stmt->Bind(1, event.pk);
                    if (row_stmt->Step()) {
                        event.row = row_stmt->ColumnRow(*last_schema);
                        const int version = static_cast<int>(last_schema->fields().size());
                        if (!row_stmt->ColumnIsNull(version)) event.row_version = row_stmt->ColumnInt(version);
                        event.ahead = event.row_version > event.seq;
                    }
                }
            }
            events.push_back(std::move(event));
        }
    } catch (...) {
        conn_->Exec("ROLLBACK");
        throw;
    }
    conn_->Exec("COMMIT");
    return events;
}

std::int64_t ChangeFeed::OldestSeq() {
    auto use = conn_->Use();
    Statement st = conn_->Prepare("SELECT min(seq) FROM _syncline_changes");
    st.Step();
    return st.ColumnInt(0);
}

bool ChangeFeed::WaitForChanges(std::int64_t cursor, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto data_version = [&] {
        auto use = conn_->Use();
        Statement st = conn_->Prepare("PRAGMA data_version");
        st.Step();
        return st.ColumnInt(0);
    };
    std::uint64_t seen_commits = db_.local_commits();
    if (data_version_ < 0) data_version_ = data_version();
    if (LatestSeq() > cursor) return true;
    while (!interrupted_.load()) {
        auto now = std::chrono::steady_clock::now();
        if (now >= deadline) return false;
        auto wait = std::min<std::chrono::steady_clock::duration>(options_.poll_interval, deadline - now);
        {
            // Sleep until this process commits (immediate wake-up) or the poll interval passes (other processes'
            // commits show up as a new data_version).
            std::unique_lock<std::mutex> lock(db_.commit_mutex_);
            db_.commit_cv_.wait_for(lock, wait,
                                    [&] { return db_.local_commits_ != seen_commits || interrupted_.load(); });
            seen_commits = db_.local_commits_;
        }
        std::int64_t version = data_version();
        if (version != data_version_) {
            data_version_ = version;
            if (LatestSeq() > cursor) return true;
        }
    }
    return LatestSeq() > cursor;
}

void ChangeFeed::Interrupt() {
    {
        std::lock_guard<std::mutex> lock(db_.commit_mutex_);
        interrupted_.store(true);
    }
    db_.commit_cv_.notify_all();
}

FeedSource::FeedSource(Database& db, FeedOptions options) : db_(db), feed_(db, options) {}

std::vector<ChangeEvent> FeedSource::ReadAfter(std::int64_t cursor, std::size_t max_batch) {
    return feed_.ReadAfter(cursor, max_batch);
}

bool FeedSource::WaitForChanges(std::int64_t cursor, std::chrono::milliseconds timeout) {
    return feed_.WaitForChanges(cursor, timeout);
}

void FeedSource::Interrupt() { feed_.Interrupt(); }

std::int64_t FeedSource::LatestSeq() { return feed_.LatestSeq(); }

std::int64_t FeedSource::OldestSeq() { return feed_.OldestSeq(); }

std::optional<std::int64_t> FeedSource::LoadCursor(const std::string& name) { return db_.GetCursor(name); }

void FeedSource::SaveCursor(const std::string& name, std::int64_t seq) { db_.SetCursor(name, seq); }

std::int64_t FeedSource::Trim(std::chrono::milliseconds horizon) { return db_.Trim(horizon); }

bool FeedSource::HoldLease(const std::string& name, const std::string& holder, std::chrono::milliseconds ttl) {
    return db_.HoldLease(name, holder, ttl);
}

void FeedSource::ReleaseLease(const std::string& name, const std::string& holder) { db_.ReleaseLease(name, holder); }

std::unique_ptr<ChangeSource> Database::OpenChangeSource() { return std::make_unique<FeedSource>(*this); }

}  // namespace syncline::storage
