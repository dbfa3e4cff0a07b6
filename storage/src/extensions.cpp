#include "extensions.hpp"

#include <syncline/core/model/query.hpp>
#include <syncline/core/model/value.hpp>
#include <syncline/storage/database.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "connection.hpp"

namespace syncline::storage {
namespace {

constexpr int kValueColumn = 0;
constexpr int kPointerColumn = 1;  // hidden: the argument of syncline_values(?)

struct Cursor {
    sqlite3_vtab_cursor base;  // first: SQLite casts between the two
    const std::vector<Value>* values = nullptr;
    std::size_t index = 0;
};

int Connect(sqlite3* db, void*, int, const char* const*, sqlite3_vtab** out, char**) {
    int rc = sqlite3_declare_vtab(db, "CREATE TABLE x(value, ptr HIDDEN)");
    if (rc != SQLITE_OK) return rc;
    auto* table = static_cast<sqlite3_vtab*>(sqlite3_malloc(sizeof(sqlite3_vtab)));
    if (!table) return SQLITE_NOMEM;
    *table = sqlite3_vtab{};
    *out = table;
    return SQLITE_OK;
}

int Disconnect(sqlite3_vtab* table) {
    sqlite3_free(table);
    return SQLITE_OK;
}

// The only usable plan takes the pointer argument; without it there is nothing to list.
int BestIndex(sqlite3_vtab*, sqlite3_index_info* info) {
    for (int i = 0; i < info->nConstraint; ++i) {
        const auto& c = info->aConstraint[i];
        if (c.iColumn == kPointerColumn && c.op == SQLITE_INDEX_CONSTRAINT_EQ && c.usable) {
            info->aConstraintUsage[i].argvIndex = 1;
            info->aConstraintUsage[i].omit = 1;
            info->estimatedCost = 1;
            info->estimatedRows = 100;
            return SQLITE_OK;
        }
    }
    return SQLITE_CONSTRAINT;
}

int Open(sqlite3_vtab*, sqlite3_vtab_cursor** out) {
    auto* cursor = new (std::nothrow) Cursor();
    if (!cursor) return SQLITE_NOMEM;
    *out = &cursor->base;
    return SQLITE_OK;
}

int Close(sqlite3_vtab_cursor* base) {
    delete reinterpret_cast<Cursor*>(base);
    return SQLITE_OK;
}

int Filter(sqlite3_vtab_cursor* base, int, const char*, int argc, sqlite3_value** argv) {
    auto* cursor = reinterpret_cast<Cursor*>(base);
    // Anything but a pointer of our type (e.g. a plain value from the sqlite3 shell) lists nothing.
    cursor->values =
        argc > 0 ? static_cast<const std::vector<Value>*>(sqlite3_value_pointer(argv[0], kValuesTable)) : nullptr;
    cursor->index = 0;
    return SQLITE_OK;
}

int Next(sqlite3_vtab_cursor* base) {
    ++reinterpret_cast<Cursor*>(base)->index;
    return SQLITE_OK;
}

int Eof(sqlite3_vtab_cursor* base) {
    auto* cursor = reinterpret_cast<Cursor*>(base);
    return !cursor->values || cursor->index >= cursor->values->size();
}

int Column(sqlite3_vtab_cursor* base, sqlite3_context* context, int column) {
    auto* cursor = reinterpret_cast<Cursor*>(base);
    if (column != kValueColumn) {
        sqlite3_result_null(context);
        return SQLITE_OK;
    }
    const Value& value = (*cursor->values)[cursor->index];
    switch (value.kind()) {
        case Value::Kind::kNull:
            sqlite3_result_null(context);
            break;
        case Value::Kind::kInteger:
            sqlite3_result_int64(context, value.AsInteger());
            break;
        case Value::Kind::kReal:
            sqlite3_result_double(context, value.AsReal());
            break;
        case Value::Kind::kBoolean:
            sqlite3_result_int(context, value.AsBoolean() ? 1 : 0);
            break;
        case Value::Kind::kText: {
            const std::string& text = value.AsText();
            // The list outlives the statement's run (the caller keeps it until the statement is reset), and SQLite
            // copies what it keeps, so the bytes are not copied here.
            sqlite3_result_text64(context, text.data(), text.size(), SQLITE_STATIC, SQLITE_UTF8);
            break;
        }
    }
    return SQLITE_OK;
}

int RowId(sqlite3_vtab_cursor* base, sqlite3_int64* rowid) {
    *rowid = static_cast<sqlite3_int64>(reinterpret_cast<Cursor*>(base)->index);
    return SQLITE_OK;
}

sqlite3_module MakeModule() {
    sqlite3_module m{};
    m.iVersion = 0;
    m.xCreate = nullptr;  // eponymous only: used as syncline_values(?), never created as a table
    m.xConnect = Connect;
    m.xBestIndex = BestIndex;
    m.xDisconnect = Disconnect;
    m.xDestroy = nullptr;
    m.xOpen = Open;
    m.xClose = Close;
    m.xFilter = Filter;
    m.xNext = Next;
    m.xEof = Eof;
    m.xColumn = Column;
    m.xRowid = RowId;
    return m;
}

const sqlite3_module kModule = MakeModule();

// syncline_lookup(op, type, col, needle): see extensions.hpp.
void Lookup(sqlite3_context* context, int argc, sqlite3_value** argv) {
    if (argc != 4 || sqlite3_value_type(argv[2]) == SQLITE_NULL || sqlite3_value_type(argv[3]) == SQLITE_NULL) {
        sqlite3_result_int(context, 0);
        return;
    }
    auto op = static_cast<FilterOp>(sqlite3_value_int(argv[0]));
    auto type = static_cast<FieldType>(sqlite3_value_int(argv[1]));
    const auto* needle = static_cast<const char*>(sqlite3_value_blob(argv[3]));
    std::string_view needle_bytes(needle ? needle : "", static_cast<std::size_t>(sqlite3_value_bytes(argv[3])));
    Value value = ValueFromSqlite(argv[2], type);
    sqlite3_result_int(context, TextLookupMatches(op, value, needle_bytes) ? 1 : 0);
}

}  // namespace

void RegisterExtensions(sqlite3* db) {
    int rc = sqlite3_create_module_v2(db, kValuesTable, &kModule, nullptr, nullptr);
    if (rc == SQLITE_OK) {
        rc = sqlite3_create_function_v2(db, kLookupFunction, 4, SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
                                        nullptr, Lookup, nullptr, nullptr, nullptr);
    }
    if (rc != SQLITE_OK) {
        throw StorageError(StoreErrc::kIo,
                           std::string("cannot register syncline's SQL functions: ") + sqlite3_errstr(rc));
    }
}

}  // namespace syncline::storage
