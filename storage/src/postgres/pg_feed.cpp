// The change feed on PostgreSQL: a ChangeSource reading _syncline_changes in seq order, woken by LISTEN/NOTIFY.
//
// Order. Two transactions may commit in the reverse order of the seqs they took. A reader that took "seq > cursor"
// would then skip the smaller one forever. So the feed reads only up to a safe horizon: the newest seq handed out at
// some moment, once every transaction that was running at that moment has finished (SafeHorizon in
// pg_database.cpp). Every seq up to the horizon is then committed or gone for good, and changes are read in seq order
// exactly once. A long transaction anywhere on the server holds the horizon back while it runs.
//
// Waking. The capture triggers NOTIFY at commit; the feed LISTENs on its own connection and sleeps on its socket.
// While a horizon waits for running transactions it polls briefly (5 ms at most); otherwise it re-checks once a
// second whatever it heard, so a lost notification (a reconnect, say) delays a change by a second at most.
#include "pg_database.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <syncline/core/model/change.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <stdexcept>

#include "pg_connection.hpp"
#include "pg_schema.hpp"

namespace syncline::storage::pg {
namespace {

class PgFeedSource final : public ChangeSource {
public:
    explicit PgFeedSource(const PostgresDatabase& db) : db_(db), conn_(db.url()) {
        wake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (wake_ < 0) throw StoreError(StoreErrc::kIo, "eventfd failed");
        Listen();
    }
    ~PgFeedSource() override { close(wake_); }

    std::vector<ChangeEvent> ReadAfter(std::int64_t cursor, std::size_t max_batch) override {
        Reconnect();
        Advance(std::chrono::milliseconds(0));
        std::vector<ChangeEvent> events;
        if (safe_ <= cursor) return events;
        conn_.Begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
        try {
            Result r = conn_.Query(
                std::string("SELECT seq, tbl, pk, op, old FROM ") + kChangesTable +
                    " WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3",
                {std::to_string(cursor), std::to_string(safe_), std::to_string(std::max<std::size_t>(max_batch, 1))});
            // Rows of the changes that left one, fetched per table in one query each, from the same snapshot.
            std::map<const Schema*, std::vector<std::size_t>> wanted;
            for (int i = 0; i < r.rows(); ++i) {
                ChangeEvent event;
                event.seq = r.Int(i, 0);
                event.table = r.Text(i, 1);
                event.op = static_cast<ChangeOp>(r.Int(i, 3));
                if (!r.IsNull(i, 4)) event.old_json = r.Text(i, 4);
                const Schema* schema = Find(event.table);
                event.pk = schema ? FromText(r.Text(i, 2), schema->pk().type) : Value(std::string(r.Text(i, 2)));
                if (schema && event.op != ChangeOp::kDelete) wanted[schema].push_back(events.size());
                events.push_back(std::move(event));
            }
            for (const auto& [schema, indexes] : wanted) FillRows(*schema, indexes, events);
            conn_.Commit();
        } catch (...) {
            try {
                conn_.Rollback();
            } catch (...) {
            }
            throw;
        }
        return events;
    }

    bool WaitForChanges(std::int64_t cursor, std::chrono::milliseconds timeout) override {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            if (interrupted_.load()) return safe_ > cursor;
            Reconnect();
            Drain();
            Advance(std::chrono::milliseconds(0));
            if (safe_ > cursor) return true;
            // A notification that came while Advance's queries ran is in libpq's buffer already, not on the socket:
            // poll would sleep through it.
            if (Drain()) continue;
            const auto now = std::chrono::steady_clock::now();
            if (now >= deadline) return false;
            // Waiting for running transactions: a short poll. Otherwise sleep on the notifications.
            auto wait = pending_ ? std::chrono::milliseconds(5) : std::chrono::milliseconds(1000);
            wait = std::min(wait, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now) +
                                      std::chrono::milliseconds(1));
            pollfd fds[2] = {{PQsocket(conn_.handle()), POLLIN, 0}, {wake_, POLLIN, 0}};
            ::poll(fds, 2, static_cast<int>(wait.count()));
        }
    }

    void Interrupt() override {
        interrupted_.store(true);
        std::uint64_t one = 1;
        ssize_t n = write(wake_, &one, sizeof one);
        (void)n;
    }

    std::int64_t LatestSeq() override {
        Reconnect();
        Advance(std::chrono::milliseconds(2000));
        return safe_;
    }

    std::int64_t OldestSeq() override {
        Reconnect();
        return conn_.Query(std::string("SELECT coalesce(min(seq), 0) FROM ") + kChangesTable).Int(0, 0);
    }

    std::optional<std::int64_t> LoadCursor(const std::string& name) override {
        Reconnect();
        Result r = conn_.Query("SELECT seq FROM _syncline_cursors WHERE name = $1", {name});
        if (r.rows() == 0) return std::nullopt;
        return r.Int(0, 0);
    }

    void SaveCursor(const std::string& name, std::int64_t seq) override {
        Reconnect();
        conn_.Query(
            "INSERT INTO _syncline_cursors (name, seq, updated_ms) VALUES ($1, $2, (extract(epoch FROM "
            "clock_timestamp()) * 1000)::bigint) ON CONFLICT (name) DO UPDATE SET seq = EXCLUDED.seq, updated_ms = "
            "EXCLUDED.updated_ms",
            {name, std::to_string(seq)});
    }

    std::int64_t Trim(std::chrono::milliseconds horizon) override;

    bool HoldLease(const std::string& name, const std::string& holder, std::chrono::milliseconds ttl) override {
        Reconnect();
        Result r = conn_.Query(
            "INSERT INTO _syncline_leases (name, holder, expires) VALUES ($1, $2, clock_timestamp() + $3::bigint * "
            "interval '1 millisecond') ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires = "
            "EXCLUDED.expires WHERE _syncline_leases.holder = EXCLUDED.holder OR _syncline_leases.expires < "
            "clock_timestamp() RETURNING holder",
            {name, holder, std::to_string(ttl.count())});
        return r.rows() == 1;
    }

    void ReleaseLease(const std::string& name, const std::string& holder) override {
        Reconnect();
        conn_.Query("DELETE FROM _syncline_leases WHERE name = $1 AND holder = $2", {name, holder});
    }

private:
    const Schema* Find(const std::string& table) const {
        auto it =
            std::find_if(db_.models().begin(), db_.models().end(), [&](const Schema& s) { return s.table() == table; });
        return it == db_.models().end() ? nullptr : &*it;
    }

    void FillRows(const Schema& schema, const std::vector<std::size_t>& indexes, std::vector<ChangeEvent>& events) {
        std::string keys = "{";
        for (std::size_t i = 0; i < indexes.size(); ++i) {
            Param p = ToParam(events[indexes[i]].pk);
            keys += (i ? ",\"" : "\"");
            for (char c : p.value_or("")) {
                if (c == '"' || c == '\\') keys += '\\';
                keys += c;
            }
            keys += '"';
        }
        keys += "}";
        // The version last: a row committed by a change past safe_ (or past the batch) is ahead of its event.
        Result r = conn_.Query("SELECT " + SelectList(schema) + ", " + Quote(kVersionColumn) + " FROM " +
                                   Quote(schema.storage_table()) + " WHERE " +
                                   Quote(schema.pk().name) + " = ANY($1::" + PgType(schema.pk()) + "[])",
                               {keys});
        std::map<std::string, int> by_key;
        for (int i = 0; i < r.rows(); ++i) by_key.emplace(r.Text(i, static_cast<int>(schema.pk_index())), i);
        for (std::size_t index : indexes) {
            ChangeEvent& event = events[index];
            auto it = by_key.find(ToParam(event.pk).value_or(""));
            if (it != by_key.end()) {
                event.row = r.GetRow(schema, it->second);
                const int version = static_cast<int>(schema.fields().size());
                if (!r.IsNull(it->second, version)) event.row_version = r.Int(it->second, version);
                event.ahead = event.row_version > event.seq;
            }
        }
    }

    // Moves the safe horizon on: confirms a pending one whose transactions have all finished, or takes a new one.
    // With max_wait, waits (polling) up to that long for the running transactions instead.
    // What a read scope of this process found safe counts too (it is the same database).
    void Advance(std::chrono::milliseconds max_wait) {
        safe_ = std::max(safe_, db_.KnownSafe());
        AdvanceOwn(max_wait);
        db_.NoteSafe(safe_);
    }
    void AdvanceOwn(std::chrono::milliseconds max_wait) {
        if (max_wait.count() > 0) {
            safe_ = SafeHorizon(conn_, safe_, max_wait);
            pending_.reset();
            return;
        }
        if (pending_) {
            if (!HorizonReached(conn_, *pending_)) return;
            safe_ = std::max(safe_, pending_->seq);
            pending_.reset();
        }
        pending_ = TakeHorizon(conn_, safe_);
        if (pending_ && HorizonReached(conn_, *pending_)) {
            safe_ = std::max(safe_, pending_->seq);
            pending_.reset();
        }
    }

    void Listen() { conn_.Exec(std::string("LISTEN ") + kNotifyChannel); }

    // Reopens a lost connection and listens again (a notification sent meanwhile is lost: the once-a-second
    // re-check covers it).
    void Reconnect() {
        if (PQstatus(conn_.handle()) == CONNECTION_OK) return;
        conn_.EnsureConnected();
        Listen();
    }

    // Takes the notifications that arrived (on the socket or already read into libpq's buffer); true when there was
    // any.
    bool Drain() {
        if (PQconsumeInput(conn_.handle()) == 0) return false;  // a broken connection: the next call reconnects
        bool any = false;
        while (PGnotify* n = PQnotifies(conn_.handle())) {
            PQfreemem(n);
            any = true;
        }
        return any;
    }

    const PostgresDatabase& db_;
    Connection conn_;
    int wake_ = -1;
    std::atomic<bool> interrupted_{false};
    std::int64_t safe_ = 0;
    std::optional<Horizon> pending_;
};

std::int64_t PgFeedSource::Trim(std::chrono::milliseconds horizon) {
    Reconnect();
    conn_.Begin();
    try {
        auto scalar = [&](const std::string& sql, std::vector<Param> params) -> std::optional<std::int64_t> {
            Result r = conn_.Query(sql, params);
            if (r.rows() == 0 || r.IsNull(0, 0)) return std::nullopt;
            return r.Int(0, 0);
        };
        const std::string now = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";
        std::int64_t latest = scalar(std::string("SELECT max(seq) FROM ") + kChangesTable, {}).value_or(0);
        conn_.Query("INSERT INTO _syncline_trim_marks (at_ms, seq) VALUES (" + now + ", $1)", {std::to_string(latest)});
        std::optional<std::int64_t> bound =
            scalar("SELECT max(seq) FROM _syncline_trim_marks WHERE at_ms <= " + now + " - $1::bigint",
                   {std::to_string(horizon.count())});
        std::int64_t deleted = 0;
        if (bound) {
            std::int64_t limit = std::min(*bound, latest - 1);
            if (auto cursor = scalar("SELECT min(seq) FROM _syncline_cursors", {})) limit = std::min(limit, *cursor);
            const std::string lim = std::to_string(limit);
            deleted = conn_.Query(std::string("DELETE FROM ") + kChangesTable + " WHERE seq <= $1", {lim}).Affected();
            // Tombstones as old as the trimmed changes go too; a table that lost some raises its version floor.
            conn_.Query(
                "WITH gone AS (DELETE FROM _syncline_tombstones WHERE seq <= $1 RETURNING tbl, seq) "
                "INSERT INTO _syncline_meta (key, value) SELECT 'floor:' || tbl, max(seq)::text FROM gone GROUP BY tbl "
                "ON CONFLICT (key) DO UPDATE SET value = greatest(_syncline_meta.value::bigint, "
                "EXCLUDED.value::bigint)::text",
                {lim});
            conn_.Query("DELETE FROM _syncline_trim_marks WHERE seq < $1", {std::to_string(*bound)});
        }
        conn_.Commit();
        return deleted;
    } catch (...) {
        try {
            conn_.Rollback();
        } catch (...) {
        }
        throw;
    }
}

}  // namespace

std::unique_ptr<ChangeSource> PostgresDatabase::OpenChangeSource() { return std::make_unique<PgFeedSource>(*this); }

}  // namespace syncline::storage::pg
