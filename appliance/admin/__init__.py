"""What an administrator manages: peers (sources, destinations) and model versions."""
