// Fuzz target "json": ParseUntrustedJson (core/protocol/json_input.hpp) against RapidJSON's own recursive parser, and the
// UTF-8 helpers against a reference decoder written differently (arithmetic on code points instead of tables).
//
// Input: one option byte, then the text. Option bits 0-5: max_depth - 1 (1..64); bit 6: comments allowed; bit 7:
// max_depth is kMaxJsonDepthLimit instead. Checks (any failure aborts, so libFuzzer reports it):
//  - both parsers accept or both refuse, except the documented differences: ours refuses "nesting too deep" (then
//    RapidJSON's document nests deeper than max_depth), "text is not valid Unicode" (then RapidJSON's document
//    holds a string or key that is not UTF-8, e.g. from a lone surrogate escape), a number too big for a double,
//    and a NUL byte (RapidJSON takes one for the end of the text);
//  - when both accept, the documents are equal in every detail (types, member order, string bytes; numbers, which the
//    reference keeps as text, as strtoll/strtoull/strtod read them: the nearest double, exactly);
//  - a refusal leaves the document null, and its description is valid UTF-8; accepted text holds no NUL byte;
//  - IsValidUtf8 agrees with the reference decoder; ToValidUtf8 equals the reference replacement (one U+FFFD per
//    maximal ill-formed subpart), its output is always valid, and valid text comes back unchanged.

#include <syncline/core/protocol/json_input.hpp>

#include <rapidjson/document.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

[[noreturn]] void Fail(const char* what) {
    std::fprintf(stderr, "json fuzzer: %s\n", what);
    std::abort();
}

// --- Reference UTF-8 decoding ------------------------------------------------------------------------------------

// The length a lead byte announces by its high bits (0 for a byte that is no lead: 10xxxxxx, 11111xxx).
std::size_t AnnouncedLength(unsigned char c) {
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) return 2;
    if ((c & 0xF0) == 0xE0) return 3;
    if ((c & 0xF8) == 0xF0) return 4;
    return 0;
}

bool IsContinuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// The smallest code point of each sequence length (shorter forms are overlong).
std::uint32_t MinCodePoint(std::size_t length) {
    constexpr std::uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    return kMin[length];
}

// Whether some valid code point of a `length`-byte sequence lies in [low, high].
bool AnyValidIn(std::uint32_t low, std::uint32_t high, std::size_t length) {
    if (low < MinCodePoint(length)) low = MinCodePoint(length);
    if (high > 0x10FFFF) high = 0x10FFFF;
    if (low > high) return false;
    // Everything in [low, high] a surrogate?
    return !(low >= 0xD800 && high <= 0xDFFF);
}

// Whether the `k` bytes at s[i] (lead plus k-1 continuation bytes) can start a valid sequence: pad the rest with
// the smallest and largest continuation bytes and look for a valid code point between the two.
bool ValidPrefix(std::string_view s, std::size_t i, std::size_t k, std::size_t length) {
    const auto lead = static_cast<unsigned char>(s[i]);
    std::uint32_t low = lead & (0x7F >> length);
    std::uint32_t high = low;
    for (std::size_t j = 1; j < length; ++j) {
        if (j < k) {
            const auto c = static_cast<unsigned char>(s[i + j]);
            low = (low << 6) | (c & 0x3F);
            high = (high << 6) | (c & 0x3F);
        } else {
            low = low << 6;
            high = (high << 6) | 0x3F;
        }
    }
    return AnyValidIn(low, high, length);
}

// The reference of ToValidUtf8: keeps valid sequences and replaces each maximal ill-formed subpart (the longest
// prefix of a would-be sequence that some valid sequence starts with, at least one byte) by U+FFFD.
std::string ReferenceToValid(std::string_view s) {
    std::string out;
    std::size_t i = 0;
    while (i < s.size()) {
        const std::size_t length = AnnouncedLength(static_cast<unsigned char>(s[i]));
        if (length == 1) {
            out += s[i++];
            continue;
        }
        std::size_t k = 1;  // bytes of a valid prefix
        if (length > 1) {
            while (k < length && i + k < s.size() && IsContinuation(static_cast<unsigned char>(s[i + k])) &&
                   ValidPrefix(s, i, k + 1, length)) {
                ++k;
            }
        }
        if (length > 1 && k == length && ValidPrefix(s, i, 1, length)) {
            out.append(s.data() + i, length);
            i += length;
        } else {
            out += "\xEF\xBF\xBD";
            // A lone byte that cannot start any valid sequence (e.g. C0, F5, a continuation byte) is one subpart.
            i += (length > 1 && ValidPrefix(s, i, 1, length)) ? k : 1;
        }
    }
    return out;
}

// The reference of IsValidUtf8: decodes every sequence to its code point and refuses overlong forms, surrogates and
// anything above U+10FFFF.
bool ReferenceIsValid(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t length = AnnouncedLength(static_cast<unsigned char>(s[i]));
        if (length == 0 || i + length > s.size()) return false;
        std::uint32_t cp = static_cast<unsigned char>(s[i]) & (0x7F >> length);
        for (std::size_t j = 1; j < length; ++j) {
            const auto c = static_cast<unsigned char>(s[i + j]);
            if (!IsContinuation(c)) return false;
            cp = (cp << 6) | (c & 0x3F);
        }
        if (length > 1 && cp < MinCodePoint(length)) return false;
        if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return false;
        i += length;
    }
    return true;
}

// --- Documents -----------------------------------------------------------------------------------------------------

// What a number's text should read as (the reference parse keeps numbers as text): an integer that fits int64
// (negative) or uint64 (otherwise) as that integer, anything else as strtod's double; nullopt for a double that
// overflows, which ours must refuse.
bool SameNumber(const rapidjson::Value& ours, std::string_view text) {
    const std::string copy(text);
    errno = 0;
    if (copy.find_first_of(".eE") == std::string::npos) {
        if (copy[0] == '-') {
            const long long i = std::strtoll(copy.c_str(), nullptr, 10);
            if (errno == 0) return ours.IsInt64() && !ours.IsDouble() && ours.GetInt64() == i;
        } else {
            const unsigned long long u = std::strtoull(copy.c_str(), nullptr, 10);
            if (errno == 0) return ours.IsUint64() && !ours.IsDouble() && ours.GetUint64() == u;
        }
    }
    const double d = std::strtod(copy.c_str(), nullptr);
    if (std::isinf(d)) Fail("accepted a number too big for a double");
    if (!ours.IsDouble()) return false;
    const double x = ours.GetDouble();
    return std::memcmp(&x, &d, sizeof d) == 0;  // -0.0 and 0.0 apart
}

// Equal in every detail to the reference document: types, number kinds and values (SameNumber), member order and
// names, string bytes.
bool SameAsReference(const rapidjson::Value& a, const rapidjson::Value& b) {
    if (a.IsNumber()) return b.IsString() && SameNumber(a, std::string_view(b.GetString(), b.GetStringLength()));
    if (a.GetType() != b.GetType()) return false;
    switch (a.GetType()) {
        case rapidjson::kStringType:
            return std::string_view(a.GetString(), a.GetStringLength()) ==
                   std::string_view(b.GetString(), b.GetStringLength());
        case rapidjson::kArrayType:
            if (a.Size() != b.Size()) return false;
            for (rapidjson::SizeType i = 0; i < a.Size(); ++i) {
                if (!SameAsReference(a[i], b[i])) return false;
            }
            return true;
        case rapidjson::kObjectType: {
            if (a.MemberCount() != b.MemberCount()) return false;
            for (auto x = a.MemberBegin(), y = b.MemberBegin(); x != a.MemberEnd(); ++x, ++y) {
                if (!SameAsReference(x->name, y->name) || !SameAsReference(x->value, y->value)) return false;
            }
            return true;
        }
        default:
            return true;  // null, false, true
    }
}

// Whether the reference document holds a number too big for a double (ours refuses those).
bool HoldsHugeNumber(const rapidjson::Value& v) {
    if (v.IsString()) {
        const std::string text(v.GetString(), v.GetStringLength());
        return text.find_first_not_of("-+.0123456789eE") == std::string::npos &&
               std::isinf(std::strtod(text.c_str(), nullptr));
    }
    if (v.IsArray()) {
        for (const auto& item : v.GetArray()) {
            if (HoldsHugeNumber(item)) return true;
        }
    }
    if (v.IsObject()) {
        for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
            if (HoldsHugeNumber(it->value)) return true;
        }
    }
    return false;
}

// Nesting depth (the outermost object or array counts 1; a scalar 0).
std::size_t Depth(const rapidjson::Value& v) {
    std::size_t deepest = 0;
    if (v.IsArray()) {
        for (const auto& item : v.GetArray()) deepest = std::max(deepest, Depth(item));
        return deepest + 1;
    }
    if (v.IsObject()) {
        for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) deepest = std::max(deepest, Depth(it->value));
        return deepest + 1;
    }
    return 0;
}

// Whether a string or key anywhere in `v` is not valid UTF-8.
bool HoldsInvalidText(const rapidjson::Value& v) {
    if (v.IsString()) return !ReferenceIsValid(std::string_view(v.GetString(), v.GetStringLength()));
    if (v.IsArray()) {
        for (const auto& item : v.GetArray()) {
            if (HoldsInvalidText(item)) return true;
        }
    }
    if (v.IsObject()) {
        for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
            if (HoldsInvalidText(it->name) || HoldsInvalidText(it->value)) return true;
        }
    }
    return false;
}

// An upper bound of the nesting RapidJSON's recursive parser can reach on `text` (every bracket counted).
std::size_t BracketCount(std::string_view text) {
    std::size_t n = 0;
    for (char c : text) n += (c == '[' || c == '{') ? 1 : 0;
    return n;
}

constexpr std::string_view kTooBig = "Number too big to be stored in double.";

// RapidJSON's default parse recurses once per level: keep it well away from the stack's end (ASan frames are big).
constexpr std::size_t kReferenceMaxBrackets = 2000;

void CheckUtf8(std::string_view text) {
    const std::string reference = ReferenceToValid(text);
    const bool valid = ReferenceIsValid(text);
    if (valid != (reference == text)) Fail("the two reference decoders disagree");
    if (syncline::IsValidUtf8(text) != valid) Fail("IsValidUtf8 disagrees with the reference decoder");
    const std::string repaired = syncline::ToValidUtf8(text);
    if (repaired != reference) Fail("ToValidUtf8 differs from the reference replacement");
    if (!syncline::IsValidUtf8(repaired)) Fail("ToValidUtf8 returned text that is not valid UTF-8");
    if (valid && repaired != text) Fail("ToValidUtf8 changed valid text");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::uint8_t options = data[0];
    const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    const bool comments = (options & 0x40) != 0;
    const std::size_t max_depth = (options & 0x80) ? syncline::kMaxJsonDepthLimit : (options & 0x3F) + 1u;

    CheckUtf8(text);

    rapidjson::Document ours;
    const syncline::JsonInputError error = syncline::ParseUntrustedJson(ours, text, max_depth, comments);
    if (error && !ours.IsNull()) Fail("a refused parse left a document behind");
    if (error && !syncline::IsValidUtf8(error.Describe())) Fail("the refusal's description is not valid UTF-8");
    if (error && !error.syntax && error.reason != "nesting too deep" && error.reason != kTooBig &&
        error.reason.rfind("text is not valid Unicode in \"", 0) != 0) {
        Fail("a refusal that is neither syntax, depth, a number too big nor Unicode");
    }
    if (!error && (Depth(ours) > max_depth || HoldsInvalidText(ours))) {
        Fail("an accepted document nests too deep or holds text that is not UTF-8");
    }
    // No JSON text holds a NUL byte (not in strings, not as whitespace, not in a comment): RapidJSON takes one for
    // the end of the input, so the reference cannot tell; refusing it is ours to do.
    if (text.find('\0') != std::string_view::npos) {
        if (!error) Fail("accepted text that holds a NUL byte");
        return 0;
    }

    if (BracketCount(text) > kReferenceMaxBrackets) return 0;
    rapidjson::Document reference;
    // Numbers stay text in the reference: SameAsReference converts them independently of ours (strtod, strtoll).
    constexpr unsigned kFlags = rapidjson::kParseValidateEncodingFlag | rapidjson::kParseNumbersAsStringsFlag;
    if (comments) {
        reference.Parse<kFlags | rapidjson::kParseCommentsFlag>(text.data(), text.size());
    } else {
        reference.Parse<kFlags>(text.data(), text.size());
    }
    const bool reference_ok = !reference.HasParseError();
    if (!error) {
        if (!reference_ok) Fail("ParseUntrustedJson accepted what RapidJSON refuses");
        if (!SameAsReference(ours, reference)) Fail("the documents differ");
        return 0;
    }
    if (error.syntax) {
        if (reference_ok) Fail("ParseUntrustedJson found a syntax error in what RapidJSON accepts");
        return 0;
    }
    if (!reference_ok) return 0;  // refused by both (ours stopped earlier, at the depth or the text)
    if (error.reason == "nesting too deep") {
        if (Depth(reference) <= max_depth) Fail("\"nesting too deep\" for a document within the limit");
    } else if (error.reason == kTooBig) {
        if (!HoldsHugeNumber(reference)) Fail("\"too big\" for a document whose numbers all fit a double");
    } else if (!HoldsInvalidText(reference)) {
        Fail("\"not valid Unicode\" for a document whose text is all UTF-8");
    }
    return 0;
}
