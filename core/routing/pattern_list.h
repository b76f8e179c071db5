#pragma once

// A string or an array of patterns with Unit's array rule: the list holds
// when no negative pattern matches and, if there are positive ones, at
// least one of them does. Shared by string and address patterns.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/result.h"
#include "core/json/value.h"

namespace canopy::routing {

template <typename PatternType>
class PatternList {
  public:
    // `compileOne(text)` returns Result<PatternType>; `noun` names one
    // element in errors ("a pattern", "an address pattern").
    template <typename CompileOne>
    static Result<PatternList> compile(const json::Value& value, std::string_view noun,
                                       CompileOne compileOne) {
        PatternList list;
        auto add = [&](const json::Value& element) -> Result<void> {
            if (!element.isString()) {
                return Error{std::string(noun) + " must be a string, not " +
                             std::string(element.typeName())};
            }
            auto pattern = compileOne(element.asString());
            if (!pattern) {
                return pattern.error();
            }
            list.has_positive_ = list.has_positive_ || !pattern->negative();
            list.patterns_.push_back(std::move(pattern.value()));
            return {};
        };
        if (!value.isArray()) {
            if (auto added = add(value); !added) {
                return added.error();
            }
            return list;
        }
        for (const json::Value& element : value.asArray()) {
            if (auto added = add(element); !added) {
                return added.error();
            }
        }
        return list;
    }

    template <typename Subject>
    bool matches(const Subject& subject) const {
        bool positive_matched = false;
        for (const PatternType& pattern : patterns_) {
            if (pattern.negative()) {
                if (pattern.bodyMatches(subject)) {
                    return false;
                }
            } else if (!positive_matched && pattern.bodyMatches(subject)) {
                positive_matched = true;
            }
        }
        return positive_matched || !has_positive_;
    }

  private:
    std::vector<PatternType> patterns_;
    bool has_positive_ = false;
};

}  // namespace canopy::routing
