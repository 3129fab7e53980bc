#!/bin/sh
# 离线安装 fazhi_flow：用本目录（wheelhouse）中的 wheel 建立虚拟环境，不访问网络。
#
# 用法：./install-offline.sh [虚拟环境目录]      默认 /opt/fazhi/venv
# 环境变量 PYTHON：用哪个 Python 建虚拟环境（默认 python3），主次版本须与 wheelhouse.json 中的相同。
# Debian/Ubuntu 需要：apt-get install python3 python3-venv（以及生成 PDF 所需的
# libpango-1.0-0 libpangoft2-1.0-0 fonts-noto-cjk fonts-arphic-ukai）。
# 已存在的虚拟环境会被就地升级到本 wheelhouse 中的版本。
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
venv="${1:-/opt/fazhi/venv}"
python="${PYTHON:-python3}"

fail() { echo "install-offline: $*" >&2; exit 1; }

[ -f "$here/requirements.txt" ] && [ -f "$here/wheelhouse.json" ] \
  || fail "$here 不是完整的 wheelhouse（缺少 requirements.txt 或 wheelhouse.json）。"
command -v "$python" >/dev/null 2>&1 || fail "找不到 Python：$python（apt-get install python3 python3-venv，或用 PYTHON=... 指定）。"
"$python" - "$here/wheelhouse.json" <<'PY' || exit 1
import json, sys, sysconfig
info = json.load(open(sys.argv[1], encoding="utf-8"))
mine = f"{sys.version_info.major}.{sys.version_info.minor}"
if mine != info["python"] or sysconfig.get_platform() != info["platform"]:
    sys.exit(f"install-offline: 这个 wheelhouse 是为 Python {info['python']}（{info['platform']}）构建的，"
             f"本机的 {sys.executable} 是 Python {mine}（{sysconfig.get_platform()}）："
             "请用 PYTHON=... 指定相同版本的 Python，或在同样的系统上重新构建 wheelhouse。")
PY
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv" 2>/dev/null \
    || fail "无法创建虚拟环境 $venv（Debian/Ubuntu 请先 apt-get install python3-venv；或检查目录权限）。"
fi
# --no-index: nothing is fetched from the network; --require-hashes: every wheel must be the one
# listed (SHA-256), so a damaged copy stops the install instead of installing half of it.
"$venv/bin/python" -m pip install --isolated --quiet --disable-pip-version-check --no-index \
    --find-links "$here" --require-hashes -r "$here/requirements.txt" \
  || fail "pip install 失败（见上方 pip 的提示）。"
"$venv/bin/fazhi-flow" --help >/dev/null || fail "安装后无法运行 $venv/bin/fazhi-flow。"
version="$("$venv/bin/python" -c 'from importlib.metadata import version; print(version("fazhi-flow"))')"
echo "已安装 fazhi-flow $version 到 $venv。"
echo "下一步（见 README“生产部署”）：编辑 /etc/fazhi/fazhi-flow.env（模板在 $here/deploy/），"
echo "  运行 fazhi-flow check 和 fazhi-flow db upgrade，再安装并启动 $here/deploy/ 中的 systemd 服务。"
