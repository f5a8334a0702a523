"""Python dicomweb-client baseline for benches/client.rs: stores every .dcm file of a folder, one
store_instances call per file (its usual use), and prints instances per second.
Usage: client_stow.py BASE_URL FOLDER"""
import glob
import sys
import time

import pydicom
from dicomweb_client.api import DICOMwebClient

base, folder = sys.argv[1:3]
files = sorted(glob.glob(folder + "/*.dcm"))
client = DICOMwebClient(url=base)
start = time.perf_counter()
for f in files:
    client.store_instances([pydicom.dcmread(f)])
elapsed = time.perf_counter() - start
print(f"{len(files) / elapsed:.1f}")
