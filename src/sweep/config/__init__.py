"""The config: its typed schema and range checks (`schema`), and how a job's config is found, composed
and checked before anything is built (`compose`, re-exported here)."""

from sweep.config.compose import (
    GROUPS,
    SEARCHPATH_KEY,
    check_choice,
    check_data,
    check_device,
    check_job_config,
    config_dir,
    group_options,
    import_modules,
    option_file,
    register_timm_model,
    search_dirs,
    splits_used,
    user_options,
)

__all__ = [
    "GROUPS",
    "SEARCHPATH_KEY",
    "check_choice",
    "check_data",
    "check_device",
    "check_job_config",
    "config_dir",
    "group_options",
    "import_modules",
    "option_file",
    "register_timm_model",
    "search_dirs",
    "splits_used",
    "user_options",
]
