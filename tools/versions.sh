# The versions the project's scripts install (sourced by tools/install-prereqs and tools/env.sh).
ORT_VERSION=1.31.1
# NNCF, which quantizes int8 models (tools/export_model.py --int8); tools/requirements.txt pins it.
NNCF_VERSION=3.4.0
