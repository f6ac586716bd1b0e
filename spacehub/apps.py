from django.contrib.staticfiles.apps import StaticFilesConfig


class SpaceHubStaticFilesConfig(StaticFilesConfig):
    """Collect only what the pages use: Bootstrap's package ships sources, maps and variants too."""

    ignore_patterns = [
        *StaticFilesConfig.ignore_patterns,
        "*.rtl.*",
        "*.esm.*",
        "bootstrap-grid*",
        "bootstrap-reboot*",
        "bootstrap-utilities*",
        "bootstrap.css*",
        "bootstrap.js*",
        "bootstrap.min.js*",
        "bootstrap.bundle*",
    ]
