"""Map the repository's folders under the one import package `factory` (the metadata is in pyproject.toml).

`schemes/` installs as `factory.schemes`, `judges/` as `factory.judges`, and so on: nothing but `factory`
lands in site-packages. Sub-packages are found by scanning each folder, so a new one needs no edit here;
folders without `__init__.py` (prompt templates, seed files) count too, so their data files are shipped.
"""

from setuptools import find_namespace_packages, setup

FOLDERS = {
    "factory": "factory",
    "factory.schemes": "schemes",
    "factory.judges": "judges",
    "factory.trainers": "trainers",
    "factory.publish": "publish",
    "factory.cards": "cards",
    "factory.recipes.shipped": "recipes",  # the recipe YAML files (and accelerate configs), as package data
}

packages = []
for package, folder in FOLDERS.items():
    packages += [package, *(f"{package}.{sub}" for sub in find_namespace_packages(folder, exclude=["*__pycache__*"]))]

setup(packages=packages, package_dir=FOLDERS)
