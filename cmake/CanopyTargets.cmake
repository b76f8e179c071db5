# Helper functions that keep every target explicit: listed sources, PRIVATE
# links unless a dependency is part of the public interface, the same warnings
# everywhere.

function(canopy_apply_warnings target)
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
        $<$<COMPILE_LANGUAGE:CXX>:-Wnon-virtual-dtor -Woverloaded-virtual>
        -Wcast-align -Wunused -Wformat=2 -Wimplicit-fallthrough
        # Kind tables use designated initializers and leave optional hooks out.
        -Wno-missing-field-initializers)
    if(CANOPY_WERROR)
        target_compile_options(${target} PRIVATE -Werror)
    endif()
    if(CANOPY_SANITIZE)
        target_compile_options(${target} PRIVATE -fsanitize=address,undefined
            -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
        target_link_options(${target} PRIVATE -fsanitize=address,undefined)
    endif()
endfunction()

# canopy_add_library(NAME SOURCES ... [PUBLIC_LIBS ...] [PRIVATE_LIBS ...])
function(canopy_add_library name)
    cmake_parse_arguments(ARG "" "" "SOURCES;PUBLIC_LIBS;PRIVATE_LIBS" ${ARGN})
    add_library(${name} STATIC ${ARG_SOURCES})
    target_include_directories(${name} PUBLIC "${PROJECT_SOURCE_DIR}")
    target_link_libraries(${name} PUBLIC ${ARG_PUBLIC_LIBS} PRIVATE ${ARG_PRIVATE_LIBS})
    canopy_apply_warnings(${name})
endfunction()

# canopy_add_executable(NAME SOURCES ... [LIBS ...])
function(canopy_add_executable name)
    cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
    add_executable(${name} ${ARG_SOURCES})
    target_link_libraries(${name} PRIVATE ${ARG_LIBS})
    canopy_apply_warnings(${name})
endfunction()

# canopy_add_test(NAME SOURCES ... [LIBS ...] [DEFINITIONS ...] [LABEL unit|integration] [TIMEOUT s])
# A GoogleTest executable whose tests ctest lists one by one, labelled for
# `ctest -L` (one label: gtest_discover_tests drops the rest of a list).
function(canopy_add_test name)
    cmake_parse_arguments(ARG "" "TIMEOUT;LABEL" "SOURCES;LIBS;DEFINITIONS" ${ARGN})
    if(NOT ARG_TIMEOUT)
        set(ARG_TIMEOUT 60)
    endif()
    if(NOT ARG_LABEL)
        set(ARG_LABEL unit)
    endif()
    add_executable(${name} ${ARG_SOURCES})
    target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gmock GTest::gtest_main)
    target_compile_definitions(${name} PRIVATE ${ARG_DEFINITIONS})
    set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY "${PROJECT_BINARY_DIR}/tests")
    canopy_apply_warnings(${name})
    gtest_discover_tests(${name}
        DISCOVERY_MODE PRE_TEST
        PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS ${ARG_LABEL})
endfunction()

# canopy_add_module(NAME SOURCES ... [OUTPUT_NAME name] [OUTPUT_DIR dir] [LIBS ...])
# A language module: a shared object named <output name>.canopy.so that
# depends on the SDK headers only.
function(canopy_add_module name)
    cmake_parse_arguments(ARG "" "OUTPUT_NAME;OUTPUT_DIR" "SOURCES;LIBS" ${ARGN})
    if(NOT ARG_OUTPUT_NAME)
        set(ARG_OUTPUT_NAME ${name})
    endif()
    if(NOT ARG_OUTPUT_DIR)
        set(ARG_OUTPUT_DIR "${CANOPY_MODULES_OUTPUT_DIR}")
    endif()
    add_library(${name} MODULE ${ARG_SOURCES})
    target_link_libraries(${name} PRIVATE canopy_sdk_headers ${ARG_LIBS})
    set_target_properties(${name} PROPERTIES
        PREFIX ""
        OUTPUT_NAME "${ARG_OUTPUT_NAME}"
        SUFFIX ".canopy.so"
        LIBRARY_OUTPUT_DIRECTORY "${ARG_OUTPUT_DIR}"
        C_VISIBILITY_PRESET hidden
        CXX_VISIBILITY_PRESET hidden)
    canopy_apply_warnings(${name})
endfunction()
