"""The lab done with Python: `requests` as the lab's Python notebook does, then the `dicomweb-client` library.

Usage: python_client.py BASE_URL TOKEN_URL CLIENT_ID CLIENT_SECRET SAMPLES_DIR
Exits 0 when every step got the answer the contract describes.
"""
import os
import sys

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient

base, token_url, client_id, secret, samples = sys.argv[1:6]
STUDY = "1.2.826.0.1.3680043.8.498.13230779778012324449356534479549187420"
SERIES1 = "1.2.826.0.1.3680043.8.498.45787841905473114233124723359129632652"
RED = "1.2.826.0.1.3680043.8.498.47359123102728459884412887463296905395"
FILES = ["red-triangle.dcm", "green-square.dcm", "blue-circle.dcm"]

r = requests.post(token_url, data={
    "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
    "resource": "https://dicom.healthcareapis.azure.com"})
assert r.status_code == 200, r.text
token = r.json()["access_token"]
auth = {"Authorization": "Bearer " + token}

# requests: multipart/related STOW built by hand, as the lab's notebook does.
boundary = "dicomlabpythonboundary"
body = b""
for name in FILES:
    with open(os.path.join(samples, name), "rb") as f:
        body += b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + f.read() + b"\r\n"
body += b"--" + boundary.encode() + b"--\r\n"
r = requests.post(base + "/studies", data=body, headers={
    **auth, "Accept": "application/dicom+json",
    "Content-Type": 'multipart/related; type="application/dicom"; boundary=' + boundary})
assert r.status_code == 200, (r.status_code, r.text)
assert len(r.json()["00081199"]["Value"]) == 3

r = requests.get(base + "/studies", params={"StudyInstanceUID": STUDY}, headers={**auth, "Accept": "application/dicom+json"})
assert r.status_code == 200 and len(r.json()) == 1, r.text
r = requests.get(base + "/instances", params={"PatientName": "anony", "fuzzymatching": "true"},
                 headers={**auth, "Accept": "application/dicom+json"})
assert r.status_code == 200 and len(r.json()) == 3, r.text

# dicomweb-client: search, metadata, retrieve, frames, rendered.
client = DICOMwebClient(url=base, headers=auth)
studies = client.search_for_studies(search_filters={"StudyInstanceUID": STUDY})
assert len(studies) == 1
series = client.search_for_series(study_instance_uid=STUDY)
assert len(series) == 2
instances = client.search_for_instances(study_instance_uid=STUDY, series_instance_uid=SERIES1)
assert len(instances) == 2
meta = client.retrieve_instance_metadata(STUDY, SERIES1, RED)
assert meta["00080018"]["Value"][0] == RED
ds = client.retrieve_instance(STUDY, SERIES1, RED, media_types=(("application/dicom", "*"),))
assert isinstance(ds, pydicom.Dataset) and ds.SOPInstanceUID == RED and ds.Rows == 979
study = client.retrieve_study(STUDY, media_types=(("application/dicom", "*"),))
assert sorted(d.SOPInstanceUID for d in study) == sorted(
    ["1.2.826.0.1.3680043.8.498.47359123102728459884412887463296905395",
     "1.2.826.0.1.3680043.8.498.12714725698140337137334606354172323212",
     "1.2.826.0.1.3680043.8.498.13273713909719068980354078852867170114"])
frames = client.retrieve_instance_frames(STUDY, SERIES1, RED, frame_numbers=[1],
                                         media_types=(("application/octet-stream", "*"),))
assert len(frames) == 1 and len(frames[0]) == 2892945
png = client.retrieve_instance_rendered(STUDY, SERIES1, RED, media_types=("image/png",))
assert png[:8] == b"\x89PNG\r\n\x1a\n"
# dicomweb-client's own STOW (multipart/related) of a dataset that already exists: 409 → HTTPError.
try:
    client.store_instances([pydicom.dcmread(os.path.join(samples, FILES[0]))])
    raise AssertionError("re-store should fail with 409")
except requests.exceptions.HTTPError as e:
    assert e.response.status_code == 409
client.delete_study(STUDY)
assert client.search_for_studies(search_filters={"StudyInstanceUID": STUDY}) == []
print("python clients: OK")
