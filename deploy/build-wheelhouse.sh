#!/usr/bin/env bash
# 构建离线安装包（wheelhouse）：本项目的 wheel 和它所有依赖的 wheel（本机平台、本机 Python 版本），
# 加上 install-offline.sh、带 SHA-256 的 requirements.txt 和 deploy/ 下的服务文件。
# 在能上网的机器上运行；把输出目录整个拷到内网服务器，在那里运行其中的 install-offline.sh。
#
# 用法：deploy/build-wheelhouse.sh [组件] [输出目录]
#   组件      可选组件，逗号分隔：pdf（生成 PDF，需要系统的 pango）、postgresql（PostgreSQL 驱动）；
#             默认 pdf,postgresql；写 none 表示只装必需部分（SQLite、无 PDF）。
#   输出目录  默认 dist/wheelhouse；必须不存在或为空。
# 环境变量 PYTHON：构建用的 Python（默认 python3），其主次版本（如 3.11）和平台须与内网服务器相同。
set -euo pipefail
checkout="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
extras="${1:-pdf,postgresql}"
out="${2:-$checkout/dist/wheelhouse}"

fail() { echo "build-wheelhouse: $*" >&2; exit 1; }

case "$extras" in
  none|"") extras="" ;;
  *) IFS=, read -r -a wanted <<<"$extras"
     for extra in "${wanted[@]}"; do
       case "$extra" in pdf|postgresql) ;; *) fail "未知的组件“$extra”：可选 pdf、postgresql，或 none。" ;; esac
     done ;;
esac
command -v "$python" >/dev/null 2>&1 || fail "找不到 Python：$python（用 PYTHON=... 指定）。"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || fail "需要 Python 3.11 或更高版本：$("$python" -V 2>&1)"
[ -f "$checkout/pyproject.toml" ] || fail "$checkout 不是 fazhi_flow 的源码目录。"
if [ -e "$out" ] && [ -n "$(ls -A "$out" 2>/dev/null)" ]; then
  fail "输出目录 $out 不是空的：请换一个目录或先删除它。"
fi
mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Build from a clean copy: setuptools reuses build/ in the source folder, which can carry files
# that no longer exist into the wheel.
echo "== 复制源码"
mkdir "$work/src"
tar -C "$checkout" --exclude=./.git --exclude='./.venv*' --exclude=./build --exclude=./dist \
    --exclude=./instance --exclude='*.egg-info' --exclude=__pycache__ --exclude=./test-artifacts -cf - . \
  | tar -C "$work/src" -xf -

echo "== 构建 wheel（组件：${extras:-无}）"
spec="$work/src"
[ -n "$extras" ] && spec="$work/src[$extras]"
"$python" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$out" "$spec" \
  || fail "pip wheel 失败（需要网络或本地的软件包索引）。"

shopt -s nullglob
others=("$out"/*.tar.gz "$out"/*.zip)
[ ${#others[@]} -eq 0 ] || fail "有依赖没能构建成 wheel：${others[*]}"

echo "== 写入清单和安装脚本"
"$python" - "$out" "$extras" <<'PY'
import hashlib, json, platform, sys, sysconfig
from pathlib import Path

out, extras = Path(sys.argv[1]), sys.argv[2]
lines, sums, project = [], [], None
for wheel in sorted(out.glob("*.whl")):
    name, version = wheel.name.split("-")[:2]
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    sums.append(f"{digest}  {wheel.name}")
    requirement = name.replace("_", "-").lower()
    if requirement == "fazhi-flow":
        project = version
        if extras:
            requirement += f"[{extras}]"
    lines.append(f"{requirement}=={version} --hash=sha256:{digest}")
if project is None:
    sys.exit("build-wheelhouse: 输出目录中没有 fazhi_flow 的 wheel")
(out / "requirements.txt").write_text(
    "# 由 build-wheelhouse.sh 生成：安装这些版本，且文件的 SHA-256 必须相符。\n" + "\n".join(lines) + "\n",
    encoding="utf-8")
(out / "SHA256SUMS").write_text("\n".join(sums) + "\n", encoding="utf-8")
info = {
    "fazhi_flow": project,
    "extras": extras,
    "python": f"{sys.version_info.major}.{sys.version_info.minor}",
    "platform": sysconfig.get_platform(),
    "libc": " ".join(platform.libc_ver()),
}
(out / "wheelhouse.json").write_text(json.dumps(info, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
PY
install -m 755 "$checkout/deploy/install-offline.sh" "$out/install-offline.sh"
mkdir -p "$out/deploy"
cp "$checkout"/deploy/*.service "$checkout"/deploy/nginx-fazhi-flow.conf "$checkout"/deploy/fazhi-flow.env.example \
  "$out/deploy/"

count=$(ls "$out"/*.whl | wc -l)
size=$(du -sh "$out" | cut -f1)
echo "wheelhouse：$out（$count 个 wheel，共 $size）"
echo "拷到服务器后运行：sudo $out/install-offline.sh [/opt/fazhi/venv]"
