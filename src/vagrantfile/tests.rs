//! The tests of the Vagrantfile reader.

use super::ruby::netmask_prefix;
use super::*;

const COURSE: &str = r#"# -*- mode: ruby -*-
Vagrant.configure("2") do |config|
  config.ssh.insert_key = false
  config.vm.synced_folder ".", "/vagrant", disabled: true
  config.vm.provider :libvirt do |libvirt|
libvirt.memory = 1024
  end
  config.vm.define :nodo1 do |nodo1|
nodo1.vm.box = "debian/bookworm64"
nodo1.vm.hostname = "nodo1"
nodo1.vm.network :private_network, ip: "10.1.1.101"
nodo1.vm.provider :libvirt do |lv|
  lv.storage :file, :size => '512M'
end
  end
  config.vm.define "dns" do |dns|
dns.vm.box = 'debian/bookworm64'  # a comment
dns.vm.network "private_network",
  ip: "10.1.1.103", netmask: "255.255.255.0"
  end
end
"#;

#[test]
fn reads_the_course_shape() {
    let v = parse(COURSE, "Vagrantfile").unwrap();
    assert!(!v.insert_key);
    assert_eq!(v.machines.len(), 2);
    let n1 = &v.machines[0];
    assert_eq!(n1.name, "nodo1");
    assert_eq!(n1.line, 8);
    assert_eq!(n1.vm_box.as_deref(), Some("debian/bookworm64"));
    assert_eq!(n1.networks[0].ip.to_string(), "10.1.1.101");
    assert_eq!(n1.memory, Some(1024));
    assert_eq!(n1.disks, vec!["512M".to_string()]);
    assert_eq!(n1.providers, vec!["libvirt".to_string()]);
    let dns = &v.machines[1];
    assert_eq!(dns.networks[0].line, 18);
    assert_eq!(dns.networks[0].prefix, 24);
    assert!(dns.disks.is_empty());
}

#[test]
fn refuses_with_the_line() {
    let cases = [
        ("N = 3\n", 1, "Ruby variable"),
        ("Vagrant.configure(\"2\") do |config|\n  (1..3).each do |i|\n", 2, "loop"),
        ("Vagrant.configure(\"2\") do |config|\n  config.vm.hostname = \"n#{i}\"\nend\n", 2, "interpolation"),
        ("Vagrant.configure(\"2\") do |config|\n  config.vm.provision \"shell\", inline: \"x\"\nend\n", 2, "provisioner"),
        ("Vagrant.configure(\"2\") do |config|\n  config.vm.network :forwarded_port, guest: 80, host: 8080\nend\n", 2, "port forward"),
        ("Vagrant.configure(\"2\") do |config|\n  config.vm.network :public_network\nend\n", 2, "public network"),
        ("Vagrant.configure(\"2\") do |config|\n  if true\n", 2, "condition"),
        ("Vagrant.configure(\"2\") do |config|\n  config.vm.provider :virtualbox do |v|\n    v.customize [\"modifyvm\", :id]\n  end\nend\n", 3, "customize"),
        ("Vagrant.configure(\"2\") do |config|\n  config.vm.synced_folder \".\", \"/vagrant\"\nend\n", 2, "synced folder"),
        ("Vagrant.configure(\"2\") do |config|\n", 0, "not closed"),
    ];
    for (text, line, what) in cases {
        let e = parse(text, "Vagrantfile").unwrap_err();
        let m = e.to_string();
        if line > 0 {
            assert!(m.starts_with(&format!("Vagrantfile:{line}: ")), "{m}");
        }
        assert!(m.contains(what), "{what}: {m}");
        assert!(m.contains("fix: "), "{m}");
        assert_eq!(crate::error::exit_code(&e), 2);
    }
}

#[test]
fn no_define_is_one_default_machine() {
    let v = parse("Vagrant.configure(\"2\") do |config|\n  config.vm.box = \"debian/bookworm64\"\n  config.vm.network \"private_network\", ip: \"10.1.96.10\"\nend\n", "V").unwrap();
    assert_eq!(v.machines.len(), 1);
    assert_eq!(v.machines[0].name, "default");
    assert_eq!(v.machines[0].networks.len(), 1);
}

#[test]
fn netmasks() {
    assert_eq!(netmask_prefix("255.255.255.0"), Some(24));
    assert_eq!(netmask_prefix("255.255.0.0"), Some(16));
    assert_eq!(netmask_prefix("255.0.255.0"), None);
}
