#include <syncline/core/protocol/json_input.hpp>

#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <charconv>
#include <clocale>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace syncline {
namespace {

// The valid second bytes of a UTF-8 sequence that starts with `lead` (Unicode Table 3-7), and its length; length 0
// for a byte that cannot start a sequence.
struct Lead {
    int length;
    unsigned char low, high;  // range of the second byte
};

Lead LeadOf(unsigned char c) {
    if (c < 0x80) return {1, 0, 0};
    if (c >= 0xC2 && c <= 0xDF) return {2, 0x80, 0xBF};
    if (c == 0xE0) return {3, 0xA0, 0xBF};
    if (c == 0xED) return {3, 0x80, 0x9F};  // no surrogates
    if (c >= 0xE1 && c <= 0xEF) return {3, 0x80, 0xBF};
    if (c == 0xF0) return {4, 0x90, 0xBF};
    if (c >= 0xF1 && c <= 0xF3) return {4, 0x80, 0xBF};
    if (c == 0xF4) return {4, 0x80, 0x8F};
    return {0, 0, 0};
}

// The length of the well-formed sequence at s[i], or 0 when it is ill-formed; `*consumed` is then the length of its
// maximal ill-formed subpart (at least 1).
std::size_t SequenceAt(std::string_view s, std::size_t i, std::size_t* consumed) {
    const Lead lead = LeadOf(static_cast<unsigned char>(s[i]));
    if (lead.length == 0) {
        *consumed = 1;
        return 0;
    }
    std::size_t n = 1;
    for (; n < static_cast<std::size_t>(lead.length); ++n) {
        if (i + n >= s.size()) break;
        const auto c = static_cast<unsigned char>(s[i + n]);
        const unsigned char low = n == 1 ? lead.low : 0x80;
        const unsigned char high = n == 1 ? lead.high : 0xBF;
        if (c < low || c > high) break;
    }
    if (n == static_cast<std::size_t>(lead.length)) return n;
    *consumed = n;
    return 0;
}

// Forwards SAX events to a Document, counting depth and checking text; stops the reader at the first problem.
class GuardedHandler {
public:
    GuardedHandler(rapidjson::Document& doc, std::size_t max_depth) : doc_(doc), max_depth_(max_depth) {}

    bool Null() { return Value() && doc_.Null(); }
    bool Bool(bool b) { return Value() && doc_.Bool(b); }
    bool Int(int i) { return Value() && doc_.Int(i); }
    bool Uint(unsigned u) { return Value() && doc_.Uint(u); }
    bool Int64(std::int64_t i) { return Value() && doc_.Int64(i); }
    bool Uint64(std::uint64_t u) { return Value() && doc_.Uint64(u); }
    bool Double(double d) { return Value() && doc_.Double(d); }
    // Every number comes here as its text (kParseNumbersAsStringsFlag, see ParseUntrustedJson).
    bool RawNumber(const char* s, rapidjson::SizeType n, bool) {
        if (!Value()) return false;
        const std::string_view text(s, n);
        if (text.find_first_of(".eE") == std::string_view::npos) {
            // An integer, as RapidJSON types them: int64 when negative, uint64 otherwise, a double beyond those.
            std::int64_t i = 0;
            std::uint64_t u = 0;
            if (text[0] == '-' ? Parsed(std::from_chars(text.data(), text.data() + n, i), text)
                               : Parsed(std::from_chars(text.data(), text.data() + n, u), text)) {
                return text[0] == '-' ? doc_.Int64(i) : doc_.Uint64(u);
            }
        }
        double d = 0;
        if (Parsed(std::from_chars(text.data(), text.data() + n, d), text)) return doc_.Double(d);
        // Out of a double's range: too close to zero is zero (or a subnormal), as everywhere; too big is refused.
        static const locale_t c_locale = newlocale(LC_ALL_MASK, "C", locale_t{});
        d = strtod_l(std::string(text).c_str(), nullptr, c_locale);
        if (std::isinf(d)) {
            failure_ = "Number too big to be stored in double.";
            return false;
        }
        return doc_.Double(d);
    }
    bool String(const char* s, rapidjson::SizeType n, bool copy) {
        if (!Value()) return false;
        if (!IsValidUtf8(std::string_view(s, n))) return BadText(std::string_view());
        return doc_.String(s, n, copy);
    }
    bool Key(const char* s, rapidjson::SizeType n, bool copy) {
        const std::string_view key(s, n);
        if (!IsValidUtf8(key)) return BadText(key);
        path_.back().key.assign(s, std::min<std::size_t>(n, kPathKeyBytes));
        return doc_.Key(s, n, copy);
    }
    bool StartObject() { return Open(false) && doc_.StartObject(); }
    bool EndObject(rapidjson::SizeType members) {
        path_.pop_back();
        return doc_.EndObject(members);
    }
    bool StartArray() { return Open(true) && doc_.StartArray(); }
    bool EndArray(rapidjson::SizeType elements) {
        path_.pop_back();
        return doc_.EndArray(elements);
    }

    const std::string& failure() const { return failure_; }

private:
    static bool Parsed(std::from_chars_result result, std::string_view text) {
        return result.ec == std::errc() && result.ptr == text.data() + text.size();
    }

    static constexpr std::size_t kPathKeyBytes = 64;

    struct Level {
        bool array = false;
        std::size_t next_index = 0;  // arrays: the position of the next element
        std::string key;             // objects: the key of the member being read
    };

    // Every value: counts its position in an enclosing array.
    bool Value() {
        if (!path_.empty() && path_.back().array) ++path_.back().next_index;
        return true;
    }

    bool Open(bool array) {
        Value();
        if (path_.size() >= max_depth_) {
            failure_ = "nesting too deep";
            return false;
        }
        path_.push_back(Level{array, 0, std::string()});
        return true;
    }

    // A string (or, when `key` is given, a key) that is not valid Unicode: names where it is.
    bool BadText(std::string_view key) {
        std::string where;
        for (const Level& level : path_) {
            if (level.array) {
                where += "[" + std::to_string(level.next_index - 1) + "]";
            } else if (&level != &path_.back() || key.empty()) {
                if (!where.empty()) where += '.';
                where += level.key;
            }
        }
        if (!key.empty()) {
            if (!where.empty()) where += '.';
            where += key.substr(0, kPathKeyBytes);
        }
        failure_ = "text is not valid Unicode in \"" + (where.empty() ? std::string("(top level)") : ToValidUtf8(where)) +
                   "\"";
        return false;
    }

    rapidjson::Document& doc_;
    std::size_t max_depth_;
    std::vector<Level> path_;
    std::string failure_;
};

}  // namespace

std::string JsonInputError::Describe() const {
    return syntax ? reason + " (at offset " + std::to_string(offset) + ")" : reason;
}

JsonInputError ParseUntrustedJson(rapidjson::Document& doc, std::string_view text, std::size_t max_depth,
                                  bool allow_comments) {
    GuardedHandler handler(doc, max_depth == 0 ? 1 : max_depth);
    rapidjson::ParseResult result;
    auto generate = [&](rapidjson::Document&) {
        rapidjson::MemoryStream memory(text.data(), text.size());
        rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> input(memory);
        rapidjson::Reader reader;
        // Numbers as text, converted exactly by the handler (RawNumber): RapidJSON's default conversion rounds long
        // mantissas to a neighbouring double (a request_id of 60 digits was echoed as another number), and its
        // full-precision one returns garbage for a zero with an exponent ("0e-24", 1.1.0's StrtodDiyFp).
        constexpr unsigned kFlags = rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag |
                                    rapidjson::kParseNumbersAsStringsFlag;
        result = allow_comments ? reader.Parse<kFlags | rapidjson::kParseCommentsFlag>(input, handler)
                                : reader.Parse<kFlags>(input, handler);
        // RapidJSON takes a NUL byte for the end of the input, so `{"a":1}` followed by NUL and anything at all
        // would pass: the whole text must have been read.
        if (!result.IsError() && input.Tell() != text.size()) {
            result.Set(rapidjson::kParseErrorDocumentRootNotSingular, input.Tell());
        }
        return !result.IsError();
    };
    doc.Populate(generate);
    if (!result.IsError()) return JsonInputError{};
    doc.SetNull();
    if (!handler.failure().empty()) return JsonInputError{handler.failure(), 0, false};
    return JsonInputError{rapidjson::GetParseError_En(result.Code()), result.Offset(), true};
}

bool IsValidUtf8(std::string_view text) {
    std::size_t i = 0;
    const std::size_t n = text.size();
    while (i < n) {
        // ASCII runs eight bytes at a time.
        while (i + 8 <= n) {
            std::uint64_t word;
            __builtin_memcpy(&word, text.data() + i, 8);
            if (word & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        if (static_cast<unsigned char>(text[i]) < 0x80) {
            ++i;
            continue;
        }
        std::size_t consumed = 0;
        const std::size_t length = SequenceAt(text, i, &consumed);
        if (length == 0) return false;
        i += length;
    }
    return true;
}

std::string ToValidUtf8(std::string_view text) {
    if (IsValidUtf8(text)) return std::string(text);
    std::string out;
    out.reserve(text.size() + 8);
    for (std::size_t i = 0; i < text.size();) {
        std::size_t consumed = 0;
        const std::size_t length = SequenceAt(text, i, &consumed);
        if (length > 0) {
            out.append(text.data() + i, length);
            i += length;
        } else {
            out += "\xEF\xBF\xBD";
            i += consumed;
        }
    }
    return out;
}

}  // namespace syncline
