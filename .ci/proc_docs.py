#!/usr/bin/env python3
"""What `nbdev_proc_nbs` does before quarto renders the docs, without its attempt to install quarto
(which cannot be installed on these machines): refresh the quarto config, the module index and the
sidebar, and process every notebook (exporting show_doc output). Then check that links between
notebooks point at notebooks that exist."""
import json, re, shutil, sys
from pathlib import Path

from nbdev.config import get_config
from nbdev.quarto import nbdev_sidebar, refresh_quarto_yml
from nbdev.serve import proc_nbs
import nbdev.doclinks


def main():
    cfg = get_config()
    refresh_quarto_yml()
    nbdev.doclinks._build_modidx()
    nbdev_sidebar.__wrapped__(path=cfg.nbs_path)
    proc_nbs(cfg.nbs_path, n_workers=1)
    shutil.rmtree(cfg.config_path / "_proc", ignore_errors=True)

    broken = []
    for nb in sorted(cfg.nbs_path.rglob("*.ipynb")):
        for cell in json.loads(nb.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] != "markdown": continue
            for target in re.findall(r"\]\(([^)#\s]+?\.(?:ipynb|qmd|md))(?:#[^)]*)?\)", "".join(cell["source"])):
                if "://" not in target and not (nb.parent / target).exists(): broken.append(f"{nb.name}: {target}")
    if broken: sys.exit("broken links between notebooks:\n" + "\n".join(broken))
    print("docs processed; no broken links between notebooks")


if __name__ == "__main__":
    main()
