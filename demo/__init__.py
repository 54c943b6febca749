"""The demo application (``make demo`` = ``python -m demo``): an application on top of md2_ros and train/,
run from a checkout; not part of the installed package."""
