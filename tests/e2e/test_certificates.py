"""/certificates: PEM bundles stored in the state directory."""

import subprocess


def make_bundle(directory, name="example.test"):
    key = directory / f"{name}.key"
    cert = directory / f"{name}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
                    "-subj", f"/CN={name}/O=Canopy Tests", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    return cert.read_text() + key.read_text()


def test_upload_inspect_and_delete(canopy, tmp_path):
    bundle = make_bundle(tmp_path)
    status, body = canopy.curl("-X", "PUT", "--data-binary", bundle,
                               "http://localhost/certificates/site")
    assert status == 200, body
    info = canopy.get("/certificates/site").json
    assert info["key"] == "RSA (2048 bits)"
    assert info["chain"][0]["subject"]["common_name"] == "example.test"
    assert canopy.get("/certificates/site/chain/0/subject/organization").json == "Canopy Tests"
    assert "site" in canopy.get("/certificates").json
    stored = canopy.state_dir / "certs" / "site"
    assert stored.read_text() == bundle

    again = canopy.put("/certificates/site", bundle)
    assert again.status == 400
    assert again.json["error"] == "Certificate already exists."

    canopy.restart()
    assert canopy.get("/certificates/site").json == info

    assert canopy.delete("/certificates/site").status == 200
    assert canopy.get("/certificates/site").status == 404
    assert not stored.exists()


def test_invalid_bundles_and_names(canopy, tmp_path):
    bundle = make_bundle(tmp_path)
    key_only = bundle[bundle.index("-----BEGIN PRIVATE KEY"):]
    answer = canopy.put("/certificates/broken", key_only)
    assert answer.status == 400
    assert answer.json["error"] == "Invalid certificate."
    assert answer.json.get("detail")
    assert canopy.put("/certificates/garbage", "not a pem").status == 400
    assert canopy.put("/certificates/a/b", bundle).status == 400
    assert canopy.get("/certificates/unknown").status == 404
    assert canopy.delete("/certificates/unknown").status == 404
    assert canopy.request("POST", "/certificates/x", body="").status == 405
    assert canopy.get("/certificates").json == {}
