// The WHERE builder: one condition per filter, joined with AND. See where_builder.hpp for the contract; the
// comments here say why each form was chosen.
#include "where_builder.hpp"

#include <syncline/storage/database.hpp>

#include <optional>
#include <string>
#include <utility>

#include "connection.hpp"
#include "extensions.hpp"
#include "schema_sql.hpp"

namespace syncline::storage {
namespace {

// The condition of an `in` filter. A short list is written inline, padded with nulls (which match nothing) to the
// next power of two so that few statement shapes serve every length; a longer one is one parameter, so no list ever
// makes a statement of its own length (a 250,000-value list made a 40 MB statement per length before).
std::string InSql(const std::string& col, const std::vector<Value>& values, std::size_t inline_max, Params& params) {
    if (values.empty()) return "0";
    if (values.size() > inline_max) {
        params.AddList(&values);
        // `+value`: an expression has no affinity, as a bound parameter has none, so the column's affinity applies to
        // the values exactly as in the inline form (a bare `value` is a column: text and number would not convert).
        return col + " IN (SELECT +value FROM " + std::string(kValuesTable) + "(?))";
    }
    std::size_t slots = 1;
    while (slots < values.size()) slots *= 2;
    std::string cond = col + " IN (";
    for (std::size_t i = 0; i < slots; ++i) {
        cond += i ? ", ?" : "?";
        params.Add(i < values.size() ? values[i] : Value());
    }
    return cond + ")";
}

// The operator of a comparison filter, with its spaces. `ne` is IS NOT, so that it keeps the rows holding null (and
// `ne null` means "not null"), as RowMatches does.
const char* Comparison(FilterOp op) {
    switch (op) {
        case FilterOp::kNe:
            return " IS NOT ";
        case FilterOp::kLt:
            return " < ";
        case FilterOp::kLte:
            return " <= ";
        case FilterOp::kGt:
            return " > ";
        default:
            return " >= ";  // kGte: WhereSql asks for the five comparisons only
    }
}

}  // namespace

void Params::Add(Value value) { items_.push_back(Item{std::move(value), nullptr}); }

void Params::AddList(const std::vector<Value>* list) { items_.push_back(Item{Value(), list}); }

void Params::BindAll(Statement& st) const {
    for (std::size_t i = 0; i < items_.size(); ++i) {
        int index = static_cast<int>(i + 1);
        if (items_[i].list) {
            st.BindValues(index, items_[i].list);
        } else {
            st.Bind(index, items_[i].value);
        }
    }
}

std::string WhereSql(const Schema& schema, const std::vector<Filter>& filters, std::size_t inline_in_values,
                     Params& params) {
    std::string sql;
    for (const auto& filter : filters) {
        if (!schema.FieldIndex(filter.field)) {
            throw StorageError(StoreErrc::kSchema,
                               "unknown field \"" + filter.field + "\" in a filter on \"" + schema.table() + "\"");
        }
        std::string col = Quote(filter.field);
        std::string cond;
        switch (filter.op) {
            case FilterOp::kExact:
                if (filter.value.IsNull()) {
                    cond = col + " IS NULL";
                } else {
                    cond = col + " = ?";
                    params.Add(filter.value);
                }
                break;
            case FilterOp::kNe:
            case FilterOp::kLt:
            case FilterOp::kLte:
            case FilterOp::kGt:
            case FilterOp::kGte:
                cond = col + Comparison(filter.op) + "?";
                params.Add(filter.value);
                break;
            case FilterOp::kIn:
                cond = InSql(col, filter.values, inline_in_values, params);
                break;
            case FilterOp::kIsNull: {
                bool is_null =
                    filter.value.kind() == Value::Kind::kBoolean ? filter.value.AsBoolean() : !filter.value.IsNull();
                cond = col + (is_null ? " IS NULL" : " IS NOT NULL");
                break;
            }
            case FilterOp::kContains:
            case FilterOp::kIContains:
            case FilterOp::kStartsWith: {
                std::optional<std::string> needle = LookupText(filter.value);
                if (!needle) {
                    cond = "0";  // a null operand matches nothing
                    break;
                }
                const FieldSpec& field = schema.field(*schema.FieldIndex(filter.field));
                cond = std::string(kLookupFunction) + "(" + std::to_string(static_cast<int>(filter.op)) + ", " +
                       std::to_string(static_cast<int>(field.type)) + ", " + col + ", ?)";
                params.Add(std::move(*needle));
                break;
            }
        }
        sql += sql.empty() ? " WHERE " : " AND ";
        sql += cond;
    }
    return sql;
}

}  // namespace syncline::storage
