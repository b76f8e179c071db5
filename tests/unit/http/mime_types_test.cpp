#include "core/http/mime_types.h"

#include <gtest/gtest.h>

namespace canopy::http {
namespace {

TEST(MimeTypes, CommonWebTypes) {
    MimeTypes types;
    EXPECT_EQ(types.typeOf("/srv/index.html"), "text/html");
    EXPECT_EQ(types.typeOf("style.css"), "text/css");
    EXPECT_EQ(types.typeOf("app.js"), "text/javascript");
    EXPECT_EQ(types.typeOf("module.mjs"), "text/javascript");
    EXPECT_EQ(types.typeOf("data.json"), "application/json");
    EXPECT_EQ(types.typeOf("notes.txt"), "text/plain");
    EXPECT_EQ(types.typeOf("feed.xml"), "text/xml");
    EXPECT_EQ(types.typeOf("logo.svg"), "image/svg+xml");
    EXPECT_EQ(types.typeOf("a.png"), "image/png");
    EXPECT_EQ(types.typeOf("a.jpg"), "image/jpeg");
    EXPECT_EQ(types.typeOf("a.jpeg"), "image/jpeg");
    EXPECT_EQ(types.typeOf("a.gif"), "image/gif");
    EXPECT_EQ(types.typeOf("a.webp"), "image/webp");
    EXPECT_EQ(types.typeOf("favicon.ico"), "image/x-icon");
    EXPECT_EQ(types.typeOf("f.woff"), "font/woff");
    EXPECT_EQ(types.typeOf("f.woff2"), "font/woff2");
    EXPECT_EQ(types.typeOf("f.ttf"), "font/ttf");
    EXPECT_EQ(types.typeOf("doc.pdf"), "application/pdf");
    EXPECT_EQ(types.typeOf("a.zip"), "application/zip");
    EXPECT_EQ(types.typeOf("a.tar.gz"), "application/gzip");
    EXPECT_EQ(types.typeOf("v.mp4"), "video/mp4");
    EXPECT_EQ(types.typeOf("v.webm"), "video/webm");
    EXPECT_EQ(types.typeOf("s.mp3"), "audio/mpeg");
    EXPECT_EQ(types.typeOf("m.wasm"), "application/wasm");
}

TEST(MimeTypes, ExtensionsIgnoreCase) {
    MimeTypes types;
    EXPECT_EQ(types.typeOf("/A/INDEX.HTML"), "text/html");
    EXPECT_EQ(types.typeOf("Photo.JpG"), "image/jpeg");
}

TEST(MimeTypes, UnknownOrNoExtension) {
    MimeTypes types;
    EXPECT_EQ(types.typeOf("/srv/file.unknownext"), "");
    EXPECT_EQ(types.typeOf("/srv/Makefile"), "");
    EXPECT_EQ(types.typeOf("/srv/.bashrc"), "");
    EXPECT_EQ(types.typeOf("/srv/dir/"), "");
    EXPECT_EQ(types.typeOf(""), "");
    // Only the last segment counts.
    EXPECT_EQ(types.typeOf("/srv/site.html/data"), "");
}

TEST(MimeTypes, ConfigurationAddsAndOverrides) {
    MimeTypes types;
    types.add("text/x-readme", "README");
    types.add("application/x-custom", ".CuStOm");
    types.add("application/javascript", ".js");
    EXPECT_EQ(types.typeOf("/docs/readme"), "text/x-readme");
    EXPECT_EQ(types.typeOf("/docs/README"), "text/x-readme");
    EXPECT_EQ(types.typeOf("x.custom"), "application/x-custom");
    EXPECT_EQ(types.typeOf("x.CUSTOM"), "application/x-custom");
    EXPECT_EQ(types.typeOf("app.js"), "application/javascript");
    EXPECT_EQ(types.typeOf("README.txt"), "text/plain");
}

}  // namespace
}  // namespace canopy::http
