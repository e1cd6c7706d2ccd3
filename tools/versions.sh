# The versions the project's scripts install (sourced by tools/install-prereqs and tools/env.sh).
ORT_VERSION=1.31.1
