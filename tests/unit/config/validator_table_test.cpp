// The validator against a table of configurations, each with its exact
// expected answer: "valid", or the exact message and JSON path of the first
// error. The table lives in cases/*.json (CANOPY_VALIDATOR_CASES_DIR), one
// file per section of config-schema.md:
//
//   {
//     "base": {...},              // optional: the tree "at" cases edit
//     "cases": [
//       {"name": "...", "config": {...}, "expected": "valid"},
//       {"name": "...", "at": "/settings/http/idle_timeout", "value": -1,
//        "expected": {"message": "...", "path": "/settings/http/idle_timeout"}}
//     ]
//   }
//
// A case gives either the whole /config tree ("config") or a value put at a
// path ("at", segments percent-decoded as the control API decodes them) into
// a copy of the file's "base", missing objects on the way created. The files
// are read with Canopy's own JSON parser, so numbers keep their text ("2.0")
// and comments are allowed.
//
// CANOPY_VALIDATOR_CASES_DUMP=1 prints every case's actual answer as JSON,
// to review a new case's answer before freezing it.

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/config/validator.h"
#include "core/controller/control_api.h"
#include "core/json/path.h"
#include "core/json/value.h"

#ifndef CANOPY_VALIDATOR_CASES_DIR
#error "CANOPY_VALIDATOR_CASES_DIR must name the directory of the case files"
#endif

#include "tests/unit/config/fixture_module.h"

namespace canopy::config {
namespace {

namespace fs = std::filesystem;

// ---- the context the controller validates with ----

using fixtures::fixtureModule;

// A python-like module: a few keys, one required unless "targets" is given.
constexpr const char* kPythonSchema = R"({
    "type": "object",
    "properties": {
        "module": {"type": "string", "minLength": 1},
        "callable": {"type": "string"},
        "home": {"type": "string"},
        "path": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "protocol": {"enum": ["wsgi", "asgi"]},
        "threads": {"type": "integer", "minimum": 1},
        "targets": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {
                "type": "object",
                "properties": {"module": {"type": "string"}, "callable": {"type": "string"}},
                "required": ["module"],
                "additionalProperties": false
            }
        }
    },
    "oneOf": [{"required": ["module"]}, {"required": ["targets"]}],
    "additionalProperties": false
})";

// A ruby-like module: "script" required.
constexpr const char* kRubySchema = R"({
    "type": "object",
    "properties": {
        "script": {"type": "string", "minLength": 1},
        "threads": {"type": "integer", "minimum": 1, "maximum": 64},
        "hooks": {"type": "string"}
    },
    "required": ["script"],
    "additionalProperties": false
})";

const ModuleRegistry& fixtureRegistry() {
    static const ModuleRegistry registry = [] {
        ModuleRegistry made;
        made.assign({fixtureModule("python", "3.11.2", kPythonSchema),
                     fixtureModule("python", "3.12.1", kPythonSchema),
                     fixtureModule("ruby", "3.1.2", kRubySchema)});
        return made;
    }();
    return registry;
}

// The very context the control API validates with, so this table says what
// the controller answers. No certificate is stored.
ValidationContext controllerContext() {
    static const json::Value no_certificates = json::Value::object();
    return validationContextFor(fixtureRegistry(), no_certificates);
}

// ---- the table ----

struct Case {
    std::string id;  // gtest parameter name: file stem and case name
    std::string file;
    std::string name;
    json::Value config;
    bool expect_valid = true;
    std::string message;
    std::string path;
    std::string problem;  // the case itself is malformed
};

std::string readFile(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

std::string identifier(std::string_view text) {
    std::string result;
    for (char character : text) {
        result += std::isalnum(static_cast<unsigned char>(character)) ? character : '_';
    }
    return result;
}

// Puts `value` at `at` below `root`, creating missing objects on the way.
bool putAt(json::Value& root, std::string_view at, json::Value value, std::string& problem) {
    if (at.size() > 1 && at.ends_with('/')) {
        // splitPath ignores a trailing '/', so "/upstreams/" would name
        // "/upstreams"; an empty key needs a whole "config".
        problem = "\"at\" must not end with '/'";
        return false;
    }
    auto split = json::splitPath(at);
    if (auto* error = std::get_if<json::PathError>(&split)) {
        problem = "bad \"at\" path: " + error->detail;
        return false;
    }
    auto segments = std::get<std::vector<std::string>>(std::move(split));
    json::Value* node = &root;
    for (size_t index = 0; index < segments.size(); ++index) {
        const std::string& segment = segments[index];
        bool last = index + 1 == segments.size();
        if (node->isArray()) {
            auto element = json::parseArrayIndex(segment);
            if (!element || *element >= node->asArray().size()) {
                problem = "\"at\" names a missing array element: " + segment;
                return false;
            }
            if (last) {
                node->asArray()[*element] = std::move(value);
                return true;
            }
            node = &node->asArray()[*element];
            continue;
        }
        if (!node->isObject()) {
            problem = "\"at\" steps into a scalar at " + segment;
            return false;
        }
        if (last) {
            node->set(segment, std::move(value));
            return true;
        }
        json::Value* next = node->find(segment);
        node = next != nullptr ? next : &node->set(segment, json::Value::object());
    }
    root = std::move(value);  // "at": "/" replaces the whole tree
    return true;
}

Case readCase(const std::string& file, const json::Value& base, const json::Value& item,
              size_t index) {
    Case made;
    made.file = file;
    made.name = "#" + std::to_string(index);
    if (!item.isObject()) {
        made.problem = "a case must be an object";
        return made;
    }
    if (const json::Value* name = item.find("name"); name != nullptr && name->isString()) {
        made.name = name->asString();
    } else {
        made.problem = "a case needs a string \"name\"";
    }
    const json::Value* config = item.find("config");
    const json::Value* at = item.find("at");
    const json::Value* value = item.find("value");
    if (config != nullptr && at == nullptr && value == nullptr) {
        made.config = *config;
    } else if (config == nullptr && at != nullptr && at->isString() && value != nullptr) {
        made.config = base;
        putAt(made.config, at->asString(), *value, made.problem);
    } else {
        made.problem = "a case needs \"config\", or \"at\" (a string) and \"value\"";
    }
    const json::Value* expected = item.find("expected");
    if (expected != nullptr && expected->isString() && expected->asString() == "valid") {
        made.expect_valid = true;
    } else if (expected != nullptr && expected->isObject() && expected->find("message") &&
               expected->find("message")->isString() && expected->find("path") &&
               expected->find("path")->isString() && expected->asObject().size() == 2) {
        made.expect_valid = false;
        made.message = expected->find("message")->asString();
        made.path = expected->find("path")->asString();
    } else {
        made.problem = "\"expected\" must be \"valid\" or {\"message\": ..., \"path\": ...}";
    }
    for (const auto& member : item.asObject()) {
        static const std::set<std::string> kKeys = {"name", "config", "at", "value", "expected"};
        if (!kKeys.contains(member.key)) {
            made.problem = "unknown case key \"" + member.key + "\"";
        }
    }
    return made;
}

std::vector<Case> loadCases() {
    std::vector<Case> cases;
    auto fail = [&](std::string file, std::string problem) {
        Case broken;
        broken.file = std::move(file);
        broken.name = "load";
        broken.problem = std::move(problem);
        cases.push_back(std::move(broken));
    };
    std::vector<fs::path> files;
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(CANOPY_VALIDATOR_CASES_DIR, error)) {
        if (entry.path().extension() == ".json") {
            files.push_back(entry.path());
        }
    }
    if (error || files.empty()) {
        fail("cases", std::string("no case files in ") + CANOPY_VALIDATOR_CASES_DIR);
    }
    std::sort(files.begin(), files.end());
    for (const auto& path : files) {
        std::string stem = path.stem().string();
        auto parsed = json::parse(readFile(path));
        if (auto* parse_error = std::get_if<json::ParseError>(&parsed)) {
            fail(stem, "does not parse at offset " + std::to_string(parse_error->offset) + ": " +
                           parse_error->detail);
            continue;
        }
        const json::Value& document = std::get<json::Value>(parsed);
        const json::Value* list = document.find("cases");
        if (list == nullptr || !list->isArray()) {
            fail(stem, "the file needs a \"cases\" array");
            continue;
        }
        const json::Value* base = document.find("base");
        json::Value empty = json::Value::object();
        for (size_t index = 0; index < list->asArray().size(); ++index) {
            cases.push_back(
                readCase(stem, base != nullptr ? *base : empty, list->asArray()[index], index));
        }
    }
    std::set<std::string> ids;
    for (auto& item : cases) {
        std::string id = identifier(item.file + "_" + item.name);
        while (!ids.insert(id).second) {
            id += "_again";
            if (item.problem.empty()) {
                item.problem = "duplicate case name";
            }
        }
        item.id = std::move(id);
    }
    return cases;
}

const std::vector<Case>& allCases() {
    static const std::vector<Case> cases = loadCases();
    return cases;
}

std::string describe(const ValidationResult& result) {
    if (result.ok()) {
        return "valid";
    }
    return "{\"message\": " + json::serialize(json::Value(result.error().message)) +
           ", \"path\": " + json::serialize(json::Value(result.error().path)) + "}";
}

// What gtest prints for a parameter: its file and name, not its bytes.
void PrintTo(const Case& item, std::ostream* out) {
    *out << item.file << ": " << item.name;
}

class ValidatorTable : public ::testing::TestWithParam<Case> {};

TEST_P(ValidatorTable, AnswersExactly) {
    const Case& item = GetParam();
    ASSERT_TRUE(item.problem.empty()) << item.file << ": " << item.name << ": " << item.problem;
    ValidationResult result = validateConfiguration(item.config, controllerContext());
    if (std::getenv("CANOPY_VALIDATOR_CASES_DUMP") != nullptr) {
        std::cout << "DUMP " << item.file << "\t" << item.name << "\t" << describe(result) << "\n";
    }
    std::string context = item.file + ": " + item.name + "\n" + json::serialize(item.config);
    if (item.expect_valid) {
        EXPECT_TRUE(result.ok()) << context << "\nrefused: " << describe(result);
        return;
    }
    ASSERT_FALSE(result.ok()) << context << "\naccepted, expected: " << item.message << " at "
                              << item.path;
    EXPECT_EQ(result.error().message, item.message) << context;
    EXPECT_EQ(result.error().path, item.path) << context;
}

INSTANTIATE_TEST_SUITE_P(Cases, ValidatorTable, ::testing::ValuesIn(allCases()),
                         [](const ::testing::TestParamInfo<Case>& param_info) {
                             return param_info.param.id;
                         });

TEST(ValidatorTableSize, AtLeast150CasesBothValidAndInvalid) {
    size_t valid = 0;
    size_t invalid = 0;
    for (const auto& item : allCases()) {
        (item.expect_valid ? valid : invalid) += 1;
    }
    EXPECT_GE(valid + invalid, 150u);
    EXPECT_GE(valid, 40u);
    EXPECT_GE(invalid, 100u);
}

}  // namespace
}  // namespace canopy::config
