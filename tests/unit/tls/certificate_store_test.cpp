#include "core/tls/certificate_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/unit/tls/test_pki.h"

namespace canopy::tls {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
namespace fs = std::filesystem;
namespace pki = ::canopy::tls::testing;

// Two valid bundles, made once for the suite.
struct Bundles {
    pki::Key ec_key = pki::ecKey();
    pki::Certificate ec_certificate =
        pki::makeCertificate(ec_key.get(), {.subject = {.common_name = "one.example"}});
    pki::Key other_key = pki::ecKey();
    pki::Certificate other_certificate =
        pki::makeCertificate(other_key.get(), {.subject = {.common_name = "two.example"}});

    std::string one() const {
        return pki::keyPem(ec_key.get()) + pki::certificatePem(ec_certificate.get());
    }
    std::string two() const {
        return pki::certificatePem(other_certificate.get()) + pki::keyPem(other_key.get());
    }
};

unsigned int modeOf(const fs::path& path) {
    struct stat status {};
    EXPECT_EQ(::lstat(path.c_str(), &status), 0) << path;
    return status.st_mode & 07777;
}

std::string contentOf(const fs::path& path) {
    std::ifstream file(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(file), {});
}

void writeFile(const fs::path& path, const std::string& content) {
    std::ofstream(path, std::ios::binary) << content;
}

std::vector<std::string> directoryEntries(const fs::path& directory) {
    std::vector<std::string> entries;
    for (const fs::directory_entry& entry : fs::directory_iterator(directory)) {
        entries.push_back(entry.path().filename().string());
    }
    std::sort(entries.begin(), entries.end());
    return entries;
}

std::string commonNameOf(const json::Value& info) {
    return info.find("chain")->asArray().at(0).find("subject")->find("common_name")->asString();
}

class CertificateStoreTest : public ::testing::Test {
  protected:
    static void SetUpTestSuite() { bundles_ = new Bundles(); }
    static void TearDownTestSuite() {
        delete bundles_;
        bundles_ = nullptr;
    }

    void SetUp() override {
        const fs::path base = ::testing::TempDir().empty() ? fs::temp_directory_path()
                                                           : fs::path(::testing::TempDir());
        std::string pattern = (base / "canopy-tls-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        state_directory_ = pattern;
        certs_ = state_directory_ / "certs";
    }
    void TearDown() override {
        std::error_code ignored;
        fs::remove_all(state_directory_, ignored);
    }

    CertificateStore openStore() {
        auto store = CertificateStore::open(certs_);
        EXPECT_TRUE(store.ok()) << store.error().message;
        return std::move(store).value();
    }

    static const Bundles& bundles() { return *bundles_; }

    fs::path state_directory_;
    fs::path certs_;

  private:
    static Bundles* bundles_;
};

Bundles* CertificateStoreTest::bundles_ = nullptr;

TEST_F(CertificateStoreTest, OpenCreatesAnOwnerOnlyDirectory) {
    CertificateStore store = openStore();
    EXPECT_EQ(store.directory(), certs_);
    ASSERT_TRUE(fs::is_directory(certs_));
    EXPECT_EQ(modeOf(certs_), 0700U);
    auto names = store.names();
    ASSERT_TRUE(names.ok());
    EXPECT_THAT(*names, IsEmpty());
}

TEST_F(CertificateStoreTest, OpenFailsWhenThePathIsNotADirectory) {
    writeFile(certs_, "not a directory");
    auto store = CertificateStore::open(certs_);
    ASSERT_FALSE(store.ok());
    EXPECT_THAT(store.error().message, HasSubstr(certs_.string()));
}

TEST_F(CertificateStoreTest, AddStoresTheBundleVerbatimAndOwnerOnly) {
    CertificateStore store = openStore();
    const std::string pem = bundles().one();
    auto added = store.add("one", pem);
    ASSERT_TRUE(added.ok()) << added.error().detail;
    EXPECT_EQ(commonNameOf(*added), "one.example");

    EXPECT_EQ(contentOf(certs_ / "one"), pem);
    EXPECT_EQ(modeOf(certs_ / "one"), 0600U);
    // No temporary file is left behind.
    EXPECT_THAT(directoryEntries(certs_), ElementsAre("one"));

    auto read = store.read("one");
    ASSERT_TRUE(read.ok());
    EXPECT_EQ(*read, pem);
    auto info = store.info("one");
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(*info, *added);
}

TEST_F(CertificateStoreTest, AddRefusesAnExistingName) {
    CertificateStore store = openStore();
    ASSERT_TRUE(store.add("site", bundles().one()).ok());
    auto again = store.add("site", bundles().two());
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().kind, StoreErrorKind::AlreadyExists);
    EXPECT_EQ(again.error().title, "Certificate already exists.");
    // The first bundle is untouched.
    EXPECT_EQ(contentOf(certs_ / "site"), bundles().one());
}

TEST_F(CertificateStoreTest, AddRefusesAnInvalidBundleAndWritesNothing) {
    CertificateStore store = openStore();
    auto added = store.add("broken", "-----BEGIN CERTIFICATE-----\n");
    ASSERT_FALSE(added.ok());
    EXPECT_EQ(added.error().kind, StoreErrorKind::InvalidCertificate);
    EXPECT_EQ(added.error().title, "Invalid certificate.");
    EXPECT_FALSE(added.error().detail.empty());
    EXPECT_THAT(directoryEntries(certs_), IsEmpty());
}

TEST_F(CertificateStoreTest, RefusesInvalidNames) {
    CertificateStore store = openStore();
    const std::vector<std::string> invalid = {
        "", ".", "..", "a/b", "/", std::string("a\0b", 3), std::string(256, 'n'), ".canopy-tmp.x"};
    for (const std::string& name : invalid) {
        EXPECT_FALSE(CertificateStore::isValidName(name)) << name;
        auto added = store.add(name, bundles().one());
        ASSERT_FALSE(added.ok()) << name;
        EXPECT_EQ(added.error().kind, StoreErrorKind::InvalidName) << name;
        EXPECT_EQ(added.error().title, "Invalid certificate name.");
        EXPECT_EQ(store.read(name).error().kind, StoreErrorKind::InvalidName) << name;
        EXPECT_EQ(store.info(name).error().kind, StoreErrorKind::InvalidName) << name;
        EXPECT_EQ(store.remove(name).error().kind, StoreErrorKind::InvalidName) << name;
    }
    EXPECT_THAT(directoryEntries(certs_), IsEmpty());

    for (const std::string& name : {std::string(255, 'n'), std::string("..."), std::string(".a"),
                                    std::string("with space"), std::string("ünï")}) {
        EXPECT_TRUE(CertificateStore::isValidName(name)) << name;
    }
    EXPECT_TRUE(store.add(std::string(255, 'n'), bundles().one()).ok());
}

TEST_F(CertificateStoreTest, RemoveDeletesTheBundle) {
    CertificateStore store = openStore();
    ASSERT_TRUE(store.add("gone", bundles().one()).ok());
    EXPECT_TRUE(store.remove("gone").ok());
    EXPECT_FALSE(fs::exists(certs_ / "gone"));

    auto again = store.remove("gone");
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().kind, StoreErrorKind::NotFound);
    EXPECT_EQ(again.error().title, "Certificate doesn't exist.");
    EXPECT_EQ(store.info("gone").error().kind, StoreErrorKind::NotFound);
    EXPECT_EQ(store.read("gone").error().kind, StoreErrorKind::NotFound);
}

TEST_F(CertificateStoreTest, AllDescribesEveryBundleInNameOrder) {
    CertificateStore store = openStore();
    auto empty = store.all();
    ASSERT_TRUE(empty.ok());
    EXPECT_EQ(*empty, json::Value::object());

    ASSERT_TRUE(store.add("b-second", bundles().two()).ok());
    ASSERT_TRUE(store.add("a-first", bundles().one()).ok());
    auto all = store.all();
    ASSERT_TRUE(all.ok());
    const json::Object& members = all->asObject();
    ASSERT_EQ(members.size(), 2U);
    EXPECT_EQ(members[0].key, "a-first");
    EXPECT_EQ(commonNameOf(members[0].value), "one.example");
    EXPECT_EQ(members[1].key, "b-second");
    EXPECT_EQ(commonNameOf(members[1].value), "two.example");
}

TEST_F(CertificateStoreTest, AllSkipsFilesThatAreNotValidBundles) {
    CertificateStore store = openStore();
    ASSERT_TRUE(store.add("good", bundles().one()).ok());
    writeFile(certs_ / "corrupt", "-----BEGIN PRIVATE KEY-----\ngarbage\n");
    writeFile(certs_ / "empty", "");
    fs::create_directory(certs_ / "subdirectory");

    auto names = store.names();
    ASSERT_TRUE(names.ok());
    EXPECT_THAT(*names, ElementsAre("corrupt", "empty", "good"));

    auto all = store.all();
    ASSERT_TRUE(all.ok());
    ASSERT_EQ(all->asObject().size(), 1U);
    EXPECT_NE(all->find("good"), nullptr);

    auto info = store.info("corrupt");
    ASSERT_FALSE(info.ok());
    EXPECT_EQ(info.error().kind, StoreErrorKind::NotFound);
    EXPECT_THAT(info.error().detail, HasSubstr("invalid"));
    // Present on disk all the same: no overwrite, but it can be deleted.
    EXPECT_EQ(store.add("corrupt", bundles().two()).error().kind, StoreErrorKind::AlreadyExists);
    EXPECT_TRUE(store.remove("corrupt").ok());
}

TEST_F(CertificateStoreTest, ReopeningSeesStoredBundlesAndDropsTemporaryFiles) {
    {
        CertificateStore store = openStore();
        ASSERT_TRUE(store.add("kept", bundles().one()).ok());
    }
    writeFile(certs_ / ".canopy-tmp.a1b2c3", bundles().two());

    CertificateStore store = openStore();
    EXPECT_THAT(directoryEntries(certs_), ElementsAre("kept"));
    auto names = store.names();
    ASSERT_TRUE(names.ok());
    EXPECT_THAT(*names, ElementsAre("kept"));
    EXPECT_TRUE(store.info("kept").ok());
}

TEST_F(CertificateStoreTest, ExistingDirectoryKeepsItsMode) {
    fs::create_directory(certs_);
    fs::permissions(certs_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec);
    CertificateStore store = openStore();
    EXPECT_EQ(modeOf(certs_), 0750U);
    ASSERT_TRUE(store.add("one", bundles().one()).ok());
    EXPECT_EQ(modeOf(certs_ / "one"), 0600U);
}

}  // namespace
}  // namespace canopy::tls
