#pragma once
/// \file
/// Typed models: map a plain struct to a Schema and to/from dynamic rows. The one place that maps columns to members
/// is a specialization of ModelMeta<T>:
///
///     struct Post { std::int64_t id = 0; std::string title, body; };
///     template <> struct syncline::ModelMeta<Post> {
///         static constexpr std::string_view kTable = "posts";
///         static auto Fields() {
///             return syncline::Fields(syncline::Field("id", &Post::id, syncline::FieldOptions().PrimaryKey()),
///                                     syncline::Field("title", &Post::title, syncline::FieldOptions().MaxLength(100)),
///                                     syncline::Field("body", &Post::body, syncline::FieldOptions().Blank().Default("")));
///         }
///     };
///
/// Member types: std::int64_t/int (integer), double (real), bool (boolean), std::string (text), DateTime, Json, and
/// std::optional<X> of any of these (a nullable field).

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>

#include <syncline/core/model/schema.hpp>
#include <syncline/core/model/value.hpp>

namespace syncline {

/// A datetime member: ISO 8601 text.
struct DateTime {
    std::string iso;
    friend bool operator==(const DateTime& a, const DateTime& b) { return a.iso == b.iso; }
};

/// A JSON member: the document's text.
struct Json {
    std::string text;
    friend bool operator==(const Json& a, const Json& b) { return a.text == b.text; }
};

/// Field options for typed models, set by chaining: FieldOptions().PrimaryKey(), FieldOptions().MaxLength(50).Blank().
struct FieldOptions {
    FieldSpec spec;
    FieldOptions PrimaryKey() const { return With([](FieldSpec& s) { s.primary_key = true; }); }
    FieldOptions Null() const { return With([](FieldSpec& s) { s.nullable = true; }); }
    FieldOptions Blank() const { return With([](FieldSpec& s) { s.blank = true; }); }
    FieldOptions Unique() const { return With([](FieldSpec& s) { s.unique = true; }); }
    FieldOptions MaxLength(std::size_t n) const { return With([n](FieldSpec& s) { s.max_length = n; }); }
    FieldOptions Default(Value v) const { return With([&v](FieldSpec& s) { s.default_value = std::move(v); }); }
    FieldOptions Choices(std::vector<Value> c) const { return With([&c](FieldSpec& s) { s.choices = std::move(c); }); }
    FieldOptions MinValue(double v) const { return With([v](FieldSpec& s) { s.min_value = v; }); }
    FieldOptions MaxValue(double v) const { return With([v](FieldSpec& s) { s.max_value = v; }); }

private:
    template <class F>
    FieldOptions With(F f) const {
        FieldOptions copy = *this;
        f(copy.spec);
        return copy;
    }
};

namespace detail {

template <class M>
struct MemberTraits;
template <>
struct MemberTraits<std::int64_t> {
    static constexpr FieldType kType = FieldType::kInteger;
    static Value To(std::int64_t v) { return Value(v); }
    static std::int64_t From(const Value& v) { return v.AsInteger(); }
};
template <>
struct MemberTraits<int> {
    static constexpr FieldType kType = FieldType::kInteger;
    static Value To(int v) { return Value(v); }
    static int From(const Value& v) { return static_cast<int>(v.AsInteger()); }
};
template <>
struct MemberTraits<double> {
    static constexpr FieldType kType = FieldType::kReal;
    static Value To(double v) { return Value(v); }
    static double From(const Value& v) { return v.AsReal(); }
};
template <>
struct MemberTraits<bool> {
    static constexpr FieldType kType = FieldType::kBoolean;
    static Value To(bool v) { return Value(v); }
    static bool From(const Value& v) { return v.AsBoolean(); }
};
template <>
struct MemberTraits<std::string> {
    static constexpr FieldType kType = FieldType::kText;
    static Value To(const std::string& v) { return Value(v); }
    static std::string From(const Value& v) { return v.AsText(); }
};
template <>
struct MemberTraits<DateTime> {
    static constexpr FieldType kType = FieldType::kDateTime;
    static Value To(const DateTime& v) { return Value(v.iso); }
    static DateTime From(const Value& v) { return DateTime{v.AsText()}; }
};
template <>
struct MemberTraits<Json> {
    static constexpr FieldType kType = FieldType::kJson;
    static Value To(const Json& v) { return Value(v.text); }
    static Json From(const Value& v) { return Json{v.AsText()}; }
};
template <class M>
struct MemberTraits<std::optional<M>> {
    static constexpr FieldType kType = MemberTraits<M>::kType;
    static constexpr bool kNullable = true;
    static Value To(const std::optional<M>& v) { return v ? MemberTraits<M>::To(*v) : Value(); }
    static std::optional<M> From(const Value& v) {
        if (v.IsNull()) return std::nullopt;
        return MemberTraits<M>::From(v);
    }
};

template <class M, class = void>
struct IsNullable : std::false_type {};
template <class M>
struct IsNullable<M, std::void_t<decltype(MemberTraits<M>::kNullable)>> : std::true_type {};

}  // namespace detail

/// One member bound to a column.
template <class T, class M>
struct FieldBinding {
    std::string_view name;
    M T::*member;
    FieldOptions options;
};

/// Binds column `name` to `member`.
template <class T, class M>
FieldBinding<T, M> Field(std::string_view name, M T::*member, FieldOptions options = {}) {
    return {name, member, std::move(options)};
}

/// The list of a model's field bindings.
template <class... B>
std::tuple<B...> Fields(B... bindings) {
    return std::tuple<B...>(std::move(bindings)...);
}

/// Specialize for each typed model: `static constexpr std::string_view kTable` and `static auto Fields()`.
template <class T>
struct ModelMeta;

/// The schema of a typed model (built once; throws SchemaError on a bad declaration).
template <class T>
const Schema& SchemaOf() {
    static const Schema schema = [] {
        std::vector<FieldSpec> specs;
        std::apply(
            [&](const auto&... binding) {
                auto add = [&](const auto& b) {
                    using M = std::remove_cv_t<std::remove_reference_t<decltype(std::declval<T>().*(b.member))>>;
                    FieldSpec spec = b.options.spec;
                    spec.name = std::string(b.name);
                    spec.type = detail::MemberTraits<M>::kType;
                    spec.nullable = spec.nullable || detail::IsNullable<M>::value;
                    specs.push_back(std::move(spec));
                };
                (add(binding), ...);
            },
            ModelMeta<T>::Fields());
        return Schema::Build(std::string(ModelMeta<T>::kTable), std::move(specs));
    }();
    return schema;
}

/// A typed object as a row in its schema's field order.
template <class T>
Row ToRow(const T& object) {
    const Schema& schema = SchemaOf<T>();
    Row row(schema.size());
    std::apply(
        [&](const auto&... binding) {
            auto put = [&](const auto& b) {
                using M = std::remove_cv_t<std::remove_reference_t<decltype(object.*(b.member))>>;
                row[*schema.FieldIndex(b.name)] = detail::MemberTraits<M>::To(object.*(b.member));
            };
            (put(binding), ...);
        },
        ModelMeta<T>::Fields());
    return row;
}

/// A row (in the schema's field order) as a typed object. Throws std::logic_error when a value has the wrong kind.
template <class T>
T FromRow(const Row& row) {
    const Schema& schema = SchemaOf<T>();
    T object{};
    std::apply(
        [&](const auto&... binding) {
            auto get = [&](const auto& b) {
                using M = std::remove_cv_t<std::remove_reference_t<decltype(object.*(b.member))>>;
                object.*(b.member) = detail::MemberTraits<M>::From(row.at(*schema.FieldIndex(b.name)));
            };
            (get(binding), ...);
        },
        ModelMeta<T>::Fields());
    return object;
}

}  // namespace syncline
