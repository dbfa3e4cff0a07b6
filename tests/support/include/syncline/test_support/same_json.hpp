#pragma once
/// \file
/// A GoogleTest assertion for JSON frames: equal as JSON values (key order and spacing free), with both texts in
/// the failure message.

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <string>

namespace syncline::test_support {

/// Whether `actual` and `expected` parse to equal JSON values.
inline ::testing::AssertionResult SameJson(const std::string& actual, const std::string& expected) {
    rapidjson::Document a, e;
    a.Parse(actual.c_str());
    e.Parse(expected.c_str());
    if (a.HasParseError()) return ::testing::AssertionFailure() << "not JSON: " << actual;
    if (e.HasParseError()) return ::testing::AssertionFailure() << "expected is not JSON: " << expected;
    if (a == e) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "\n  actual:   " << actual << "\n  expected: " << expected;
}

}  // namespace syncline::test_support
