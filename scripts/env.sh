# Sourced by the scripts: the data path used on this checkout. MNIST comes
# from ../shared/data when it is there (CI and the project machines), else
# from ADVX_DATA, ./data or the user cache (see `advx data list`).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${ADVX_DATA:-}" ] && [ -d "$here/../shared/data/mnist" ]; then
  export ADVX_DATA="$here/../shared/data"
fi
