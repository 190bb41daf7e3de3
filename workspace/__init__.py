"""The research workspace's side: the ``research`` command (ls, pull, verify).

It reads what the appliance releases (``anonymizer.release``) and builds volumes with ``models``;
it never imports ``appliance``, and installs without the appliance's server dependencies.
"""
