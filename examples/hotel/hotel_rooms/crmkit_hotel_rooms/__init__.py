"""crmkit-hotel-rooms: guests' room preferences and stays for the example hotel group."""
